import type { Policy } from '../../model/policy.js';
import type { RuleName } from '../../model/verdict.js';

/**
 * How the false-rollback budget (policy.falseRollbackRate) is split across the rollback tests.
 * By the union bound, P(any rule rolls back a canary as good as the baseline) ≤ the budget.
 * A deployment that streams has two more tests (token rate, and answer length when asked):
 * their shares come out of the latency rules', so one that does not stream is judged with
 * exactly the shares it always had.
 */
export const ALPHA_SHARES: Readonly<Record<RuleName, number>> = Object.freeze({
  error_rate_max: 0.25,
  error_rate_delta: 0.25,
  latency_p95: 0.15,
  latency_p99: 0.15,
  tpot: 0,
  output_tokens: 0,
  business: 0.1,
  agreement: 0.1,
  // Not a rollback test (a mismatch holds the canary; it never rolls back): its own level,
  // SAMPLE_RATIO_ALPHA, outside the false-rollback budget.
  sample_ratio: 0,
});
export const STREAM_ALPHA_SHARES: Readonly<Record<RuleName, number>> = Object.freeze({
  ...ALPHA_SHARES,
  latency_p95: 0.11,
  latency_p99: 0.11,
  tpot: 0.06,
  output_tokens: 0.02,
});

export function alphaFor(policy: Policy, rule: RuleName, streams = false): number {
  return (policy.falseRollbackRate ?? 0.01) * (streams ? STREAM_ALPHA_SHARES : ALPHA_SHARES)[rule];
}

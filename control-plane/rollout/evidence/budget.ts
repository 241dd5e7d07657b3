import type { Policy } from '../../model/policy.js';
import type { RuleName } from '../../model/verdict.js';

/**
 * How the false-rollback budget (policy.falseRollbackRate) is split across the rollback tests.
 * By the union bound, P(any rule rolls back a canary as good as the baseline) ≤ the budget.
 */
export const ALPHA_SHARES: Readonly<Record<RuleName, number>> = Object.freeze({
  error_rate_max: 0.22,
  error_rate_delta: 0.22,
  latency_p95: 0.14,
  latency_p99: 0.14,
  tpot: 0.06,
  output_tokens: 0.02,
  business: 0.1,
  agreement: 0.1,
});

export function alphaFor(policy: Policy, rule: RuleName): number {
  return (policy.falseRollbackRate ?? 0.01) * ALPHA_SHARES[rule];
}

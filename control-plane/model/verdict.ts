import type { OutcomeStats } from './outcomes.js';
import type { CanaryProgress } from './progress.js';

/**
 * Verdicts (DESIGN.md §3), one doc line each:
 * - healthy: every rule has evidence, at `confidence`, that the canary is within its limit —
 *   advance to the next step once the step has lasted `stepDuration`, or promote after the last;
 * - degraded: evidence of harm is building (halfway to a rollback), or p99 is over its ratio
 *   but not yet for `latencyP99For` — hold at this weight;
 * - critical: a rollback test rejected "the canary is fine" — roll back when autoRollback;
 * - inconclusive: not enough evidence either way yet — keep going at this weight, and say how
 *   many more canary requests (and how long at the current rate) a decision is expected to need;
 * - error: metrics unavailable — hold; never act on missing data.
 * In the shadow phase the same verdicts hold, with one more rule (agreement): "healthy" then
 * means the gate is passed (the canary goes live at its first step) and "critical" that it is
 * rolled back before any user got an answer from it.
 */
export type Verdict = 'healthy' | 'degraded' | 'critical' | 'inconclusive' | 'error';

export type Action =
  /** `fromShadow`: the shadow gate passed; the weight is the first live step. */
  | { type: 'advance'; weight: number; fromShadow?: boolean }
  | { type: 'promote' }
  /** Ready to advance (kind "step", to `weight`) or promote, and held for a person's approval (policy.approvals). */
  | { type: 'await_approval'; kind: 'step' | 'promote'; weight?: number }
  /** `fromShadow`: rolled back in its shadow phase, before any user got an answer from it. */
  | { type: 'rollback'; fromShadow?: boolean }
  /** Critical with autoRollback off: the failure is recorded, nothing else happens. */
  | { type: 'record_failure' };

export type RuleName =
  | 'error_rate_max'
  | 'error_rate_delta'
  | 'latency_p95'
  | 'latency_p99'
  | 'tpot'
  | 'output_tokens'
  | 'business'
  | 'agreement'
  | 'sample_ratio';

/**
 * A rule's evidence. `status`: fail (its rollback test rejected), warn (halfway there, or p99
 * not yet sustained), pass (non-inferiority shown at `confidence`), pending (neither yet),
 * skipped (cannot apply, e.g. no baseline traffic to compare with).
 */
export interface RuleEvidence {
  rule: RuleName;
  status: 'fail' | 'warn' | 'pass' | 'pending' | 'skipped';
  /** One sentence a person can act on. */
  summary: string;
  /** The limit in words, e.g. "canary error rate ≤ 5.00%". */
  limit: string;
  /** Per variant: estimate, the always-valid bounds at `confidence`, and counts. */
  canary: { estimate: number | null; low: number | null; high: number | null; n: number; events: number } | null;
  baseline: { estimate: number | null; low: number | null; high: number | null; n: number; events: number } | null;
  /** The rollback test: its e-value, always-valid p-value (= min(1, 1/e)) and its share of falseRollbackRate. */
  eValue: number;
  pValue: number;
  alpha: number;
  /** For pending rules: canary requests and seconds (at the current rate) a decision is expected to need. */
  needs?: { requests: number | null; seconds: number | null };
}

export interface Decision {
  verdict: Verdict;
  reasons: string[];
  actions: Action[];
  progress: CanaryProgress;
  rules: RuleEvidence[];
  /** Set when the verdict is inconclusive: what a decision still needs, in total. */
  needs?: { requests: number | null; seconds: number | null; advice: string | null };
  /** Business outcomes per variant with the test's result, when feedback arrives. */
  business?: BusinessOutcomes | null;
}

/** Outcomes per variant since the canary started, with the business test's relative change and p-value. */
export interface BusinessOutcomes {
  baseline: OutcomeStats;
  canary: OutcomeStats;
  relativeChange: { value: number; low: number; high: number } | null;
  pValue: number;
}

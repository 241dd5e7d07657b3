import type { Stratum } from '../../model/progress.js';
import type { RuleEvidence } from '../../model/verdict.js';
import { alphaFor } from '../evidence/budget.js';
import { effective, NO_INFLATION } from '../evidence/clusters.js';
import { oneSampleRule, type RuleContext } from '../evidence/one-sample.js';
import { priorWithMean, UNIFORM } from '../evidence/sequential.js';
import { pct } from '../evidence/text.js';

/**
 * Absolute error rate: roll back at once when the canary's own error rate is shown above
 * errorRateMax (what the fast check between intervals also runs); pass when shown below it.
 * While the baseline serves beside it, only failures the baseline's concurrent rate does not
 * explain count: the canary must also be shown above the baseline over the same steps (the
 * stratified ratio test), so an outage both versions share rolls nothing back. At 100% no
 * baseline serves beside it; there the failures its retries on the baseline reproduced are the
 * shared ones, and only the others count (with retries off, every failure counts).
 */
export function errorMaxRule(ctx: RuleContext): RuleEvidence {
  const t = ctx.policy.thresholds;
  const reproduced = Math.min(ctx.canary.retryFailed ?? 0, ctx.canary.errors);
  const own = ctx.canary.errors - reproduced;
  const beside = (s: Stratum) => s.weight < 100 && s.baseline.n > 0;
  const current = ctx.strata.at(-1);
  // Users' clustered errors (sticky keys) count as the independent draws they are worth.
  const f = ctx.errorInflation ?? NO_INFLATION;
  const relative =
    current && beside(current)
      ? ctx.strata.filter(beside).map((s) => ({
          canary: effective(s.canary, f.canary),
          baseline: effective(s.baseline, f.baseline),
        }))
      : undefined;
  return oneSampleRule(ctx, {
    rule: 'error_rate_max',
    x: own,
    n: ctx.canary.n,
    limit: t.errorRateMax,
    alpha: alphaFor(ctx.policy, 'error_rate_max'),
    limitText: `canary error rate ≤ ${pct(t.errorRateMax)}`,
    what:
      reproduced > 0
        ? `canary error rate, less the ${reproduced} failures its retries on the baseline reproduced,`
        : 'canary error rate',
    baseline: { x: ctx.baseline.errors, n: ctx.baseline.n },
    passPrior: priorWithMean(t.errorRateMax / 4),
    failPrior: UNIFORM,
    relative,
    inflation: f,
  });
}

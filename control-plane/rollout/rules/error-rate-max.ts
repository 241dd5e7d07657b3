import type { RuleEvidence } from '../../model/verdict.js';
import { alphaFor } from '../evidence/budget.js';
import { oneSampleRule, type RuleContext } from '../evidence/one-sample.js';
import { priorWithMean, UNIFORM } from '../evidence/sequential.js';
import { pct } from '../evidence/text.js';

/**
 * Absolute error rate: roll back at once when the canary's own error rate is shown above
 * errorRateMax (what the fast check between intervals also runs); pass when shown below it.
 */
export function errorMaxRule(ctx: RuleContext): RuleEvidence {
  const t = ctx.policy.thresholds;
  return oneSampleRule(ctx, {
    rule: 'error_rate_max',
    x: ctx.canary.errors,
    n: ctx.canary.n,
    limit: t.errorRateMax,
    alpha: alphaFor(ctx.policy, 'error_rate_max'),
    limitText: `canary error rate ≤ ${pct(t.errorRateMax)}`,
    what: 'canary error rate',
    baseline: { x: ctx.baseline.errors, n: ctx.baseline.n },
    passPrior: priorWithMean(t.errorRateMax / 4),
    failPrior: UNIFORM,
  });
}

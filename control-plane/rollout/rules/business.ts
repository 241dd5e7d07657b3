import type { OutcomeStats } from '../../model/outcomes.js';
import type { Policy } from '../../model/policy.js';
import type { BusinessInput, CanaryProgress } from '../../model/progress.js';
import type { BusinessOutcomes, RuleEvidence } from '../../model/verdict.js';
import { alphaFor } from '../evidence/budget.js';
import { businessTest } from '../evidence/business-test.js';
import { fmtP, pct } from '../evidence/text.js';

/** Outcomes per variant with the test's result: what the business rule judges and the API shows. */
export function businessOutcomes(policy: Policy, business: BusinessInput): BusinessOutcomes | null {
  if (!business) return null;
  const test = businessTest(business.baseline, business.canary, policy.businessDropMax, policy.confidence);
  return { ...business, relativeChange: test.relativeChange, pValue: test.pValue };
}

/**
 * Business outcomes (POST /v1/feedback): roll back when the canary's mean is more than
 * businessDropMax below the baseline's (always-valid mSPRT) for businessFor; never on fewer
 * than businessMinOutcomes outcomes per variant.
 */
export function businessRule(
  progress: CanaryProgress,
  policy: Policy,
  business: BusinessOutcomes | null,
  now: number,
): { rule: RuleEvidence | null; breachSince: number | null } {
  if (!business) return { rule: null, breachSince: null };
  const alpha = alphaFor(policy, 'business');
  const { baseline: b, canary: c } = business;
  const limit = `canary outcome ≥ ${pct(1 - policy.businessDropMax)} of the baseline's, or not for ${Math.round(policy.businessForMs / 1000)}s`;
  const variant = (o: OutcomeStats) => ({
    estimate: o.n > 0 ? o.mean : null,
    low: null,
    high: null,
    n: o.n,
    events: o.n,
  });
  const base = { rule: 'business' as const, limit, canary: variant(c), baseline: variant(b), alpha };
  // Too few outcomes: pending for this rule, never a rollback.
  if (b.n < policy.businessMinOutcomes || c.n < policy.businessMinOutcomes) {
    return {
      rule: {
        ...base,
        status: 'pending',
        eValue: 1,
        pValue: 1,
        summary: `${c.n} canary and ${b.n} baseline outcomes so far (needs ${policy.businessMinOutcomes} each)`,
      },
      breachSince: null,
    };
  }
  const t = business;
  const evidence = `business metric: canary mean ${c.mean.toFixed(4)} vs baseline ${b.mean.toFixed(4)}`;
  const stats = { eValue: 1 / Math.max(t.pValue, 1e-300), pValue: t.pValue };
  if (t.pValue > alpha)
    return {
      rule: {
        ...base,
        ...stats,
        status: 'pass',
        summary: `${evidence}: no significant drop of more than ${pct(policy.businessDropMax)}`,
      },
      breachSince: null,
    };
  const breachSince = progress.businessBreachSince ?? now;
  const held = now - breachSince;
  const msg = `${evidence} is more than ${pct(policy.businessDropMax)} lower (always-valid p=${fmtP(t.pValue)}) for ${Math.round(held / 1000)}s`;
  const status = held >= policy.businessForMs ? 'fail' : 'warn';
  return {
    rule: {
      ...base,
      ...stats,
      status,
      summary: status === 'fail' ? `${msg} (limit ${Math.round(policy.businessForMs / 1000)}s)` : msg,
    },
    breachSince,
  };
}

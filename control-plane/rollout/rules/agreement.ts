import type { AgreementCounts } from '../../../proxy/contract/stats.js';
import type { ShadowPolicy } from '../../model/policy.js';
import type { RuleEvidence } from '../../model/verdict.js';
import { alphaFor } from '../evidence/budget.js';
import { oneSampleRule, type RuleContext } from '../evidence/one-sample.js';
import { priorWithMean, UNIFORM } from '../evidence/sequential.js';
import { pct } from '../evidence/text.js';

/**
 * Shadow agreement: the share of compared shadow answers that disagree with the baseline's,
 * as a one-sample always-valid test like the absolute error rule — roll back when the evidence
 * says agreement is below `agreementMin`, pass when its lower bound is at or above it. With
 * `relativeToNoise`, judged against the baseline's disagreement with itself as latency is
 * against the baseline's concurrent share.
 */
export function agreementRule(
  ctx: RuleContext,
  shadow: ShadowPolicy,
  canary: AgreementCounts,
  noise: AgreementCounts,
): RuleEvidence {
  const limit = 1 - shadow.agreementMin;
  const n = canary.compared,
    x = canary.compared - canary.agreed;
  const nb = noise.noiseCompared,
    xb = noise.noiseCompared - noise.noiseAgreed;
  const relative =
    shadow.relativeToNoise && nb > 0 ? [{ canary: { n, events: x }, baseline: { n: nb, events: xb } }] : undefined;
  const r = oneSampleRule(ctx, {
    rule: 'agreement',
    x,
    n,
    limit,
    alpha: alphaFor(ctx.policy, 'agreement'),
    limitText: `agreement with the baseline ≥ ${pct(shadow.agreementMin)}${shadow.relativeToNoise ? " (or within that of the baseline's agreement with itself)" : ''}, over at least ${shadow.minRequests} compared answers`,
    what: 'share of shadow answers that disagree with the baseline',
    baseline: { x: xb, n: nb },
    relative,
    passPrior: priorWithMean(limit / 4),
    failPrior: [UNIFORM, priorWithMean(Math.min(0.9, 3 * limit))],
  });
  const agreement =
    n > 0
      ? `agreement ${pct(canary.agreed / n)} (${canary.agreed}/${n}${r.canary?.high != null ? `, lower bound ${pct(1 - r.canary.high)}` : ''})`
      : 'no shadow answers compared yet';
  const floor =
    nb > 0 ? `; the baseline agrees with itself ${pct(noise.noiseAgreed / nb)} (${noise.noiseAgreed}/${nb})` : '';
  const lost =
    canary.errors + canary.timeouts + canary.dropped > 0
      ? `; shadow errors ${canary.errors}, timeouts ${canary.timeouts}, dropped ${canary.dropped}`
      : '';
  const few = r.status === 'pass' && n < shadow.minRequests;
  // The evidence is shown as agreement (the test runs on disagreement): estimate, bounds, agreed count.
  const asAgreement = (v: RuleEvidence['canary']) =>
    v && {
      estimate: v.estimate === null ? null : 1 - v.estimate,
      low: v.high === null ? null : 1 - v.high,
      high: v.low === null ? null : 1 - v.low,
      n: v.n,
      events: v.n - v.events,
    };
  return {
    ...r,
    canary: asAgreement(r.canary),
    baseline: asAgreement(r.baseline),
    status: few ? 'pending' : r.status,
    summary: `${agreement}${floor}${lost} — ${few ? `needs ${shadow.minRequests - n} more compared answers (shadow.minRequests ${shadow.minRequests})` : r.summary}`,
  };
}

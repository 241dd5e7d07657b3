import type { RuleEvidence } from '../../model/verdict.js';
import { alphaFor } from '../evidence/budget.js';
import { clusteringText, effective, NO_INFLATION } from '../evidence/clusters.js';
import type { RuleContext } from '../evidence/one-sample.js';
import { lnRatioE, pFromLnE, rateBound, type StratumCounts, scaleToPass } from '../evidence/sequential.js';
import { fmtP, needsText, pct } from '../evidence/text.js';

/** Relative error rate: rollback on the stratified ratio test; pass when canary − baseline < delta with confidence. */
export function errorDeltaRule(ctx: RuleContext): RuleEvidence {
  const delta = ctx.policy.thresholds.errorRateDelta;
  const alpha = alphaFor(ctx.policy, 'error_rate_delta');
  const c = ctx.canary,
    b = ctx.baseline;
  const limit = `canary error rate ≤ baseline + ${pct(delta)}, and not significantly above the baseline's`;
  if (b.n === 0) {
    return {
      rule: 'error_rate_delta',
      status: 'skipped',
      limit,
      summary:
        'the baseline had no traffic while the canary ran: the relative rule cannot compare (absolute rules still apply)',
      canary: null,
      baseline: null,
      eValue: 1,
      pValue: 1,
      alpha,
    };
  }
  // Users' clustered errors (sticky keys) count as the independent draws they are worth.
  const f = ctx.errorInflation ?? NO_INFLATION;
  const strata: StratumCounts[] = ctx.strata.map((s) => ({
    canary: effective(s.canary, f.canary),
    baseline: effective(s.baseline, f.baseline),
  }));
  const ce = effective(c, f.canary),
    be = effective(b, f.baseline);
  const lnE = lnRatioE(strata);
  const half = ctx.beta / 2;
  const bounds = (x: number, n: number) => ({
    low: ctx.explain && n > 0 ? rateBound(x, n, half, 'lower') : null,
    high: ctx.explain && n > 0 ? rateBound(x, n, half, 'upper') : null,
  });
  const cb = bounds(ce.events, ce.n),
    bb = bounds(be.events, be.n);
  const cEst = c.n > 0 ? c.errors / c.n : null,
    bEst = b.errors / b.n;
  const base = {
    rule: 'error_rate_delta' as const,
    limit,
    canary: { estimate: cEst, low: cb.low, high: cb.high, n: c.n, events: c.errors },
    baseline: { estimate: bEst, low: bb.low, high: bb.high, n: b.n, events: b.errors },
    eValue: Math.exp(Math.min(lnE, 700)),
    pValue: pFromLnE(lnE),
    alpha,
  };
  const evidence = `canary error rate ${pct(cEst)} (${c.errors}/${c.n}) vs baseline ${pct(bEst)} (${b.errors}/${b.n})${clusteringText(f)}`;
  if (lnE >= Math.log(1 / alpha))
    return {
      ...base,
      status: 'fail',
      summary: `${evidence}: the canary fails more often than the baseline (always-valid p=${fmtP(base.pValue)} ≤ ${fmtP(alpha)})`,
    };
  if (lnE >= Math.log(1 / alpha) / 2)
    return {
      ...base,
      status: 'warn',
      summary: `${evidence}: evidence building that the canary fails more often (p=${fmtP(base.pValue)}; rolls back at ${fmtP(alpha)})`,
    };
  // Canary at `rateC` over m requests, the baseline growing in proportion.
  const passAt = (xc: number, m: number, g: number) =>
    rateBound(xc, m, half, 'upper') - rateBound(be.events * g, be.n * g, half, 'lower') < delta;
  if (c.n > 0 && passAt(ce.events, ce.n, 1)) {
    const margin = cb.high !== null && bb.low !== null ? `at most ${pct(cb.high - bb.low)} above the baseline, ` : '';
    return { ...base, status: 'pass', summary: `${evidence}: ${margin}within +${pct(delta)}` };
  }
  if (!ctx.explain) return { ...base, status: 'pending', summary: evidence };
  const rateC = c.n >= 20 ? c.errors / c.n : bEst;
  const base0 = Math.max(ce.n, 1 / f.canary);
  const scale = scaleToPass((g) => passAt(rateC * base0 * g, base0 * g, g));
  // Back in requests: each counted as 1/f.canary of an independent one.
  const requests = Number.isFinite(scale) ? Math.max(1, Math.ceil((base0 * scale - ce.n) * f.canary)) : null;
  const needs = { requests, seconds: requests !== null && ctx.canaryRate ? requests / ctx.canaryRate : null };
  return {
    ...base,
    status: 'pending',
    needs,
    summary: `${evidence}: not yet shown to be within +${pct(delta)}${needsText(needs)}`,
  };
}

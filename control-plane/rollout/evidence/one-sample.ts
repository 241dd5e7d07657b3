import type { Policy } from '../../model/policy.js';
import type { StepCounts, Stratum } from '../../model/progress.js';
import type { RuleEvidence, RuleName } from '../../model/verdict.js';
import { clusteringText, type ErrorInflation, NO_INFLATION } from './clusters.js';
import {
  type BetaPrior,
  lnOneSidedE,
  lnRatioE,
  pFromLnE,
  rateBound,
  type StratumCounts,
  scaleToPass,
  UNIFORM,
} from './sequential.js';
import { fmtP, needsText, pct } from './text.js';

export interface RuleContext {
  policy: Policy;
  /** Every stratum including the current one (the last). */
  strata: Stratum[];
  canary: StepCounts;
  baseline: StepCounts;
  /** Canary requests per second in the current step, if known. */
  canaryRate: number | null;
  beta: number;
  /** false: statuses only (no bounds, no "needs"): what the simulation and the fast path use. */
  explain: boolean;
  /** The deployment streams (its answers carry a token rate): the budget has stream rules then. */
  streams?: boolean;
  /** The canary is still in its warm-up (policy.warmup): its latency is not judged yet. */
  warming?: boolean;
  /** How much users' clustered errors (sticky keys) inflate each variant's error count's variance (evidence/clusters.ts). */
  errorInflation?: ErrorInflation;
}

/** A rule not judged yet (or not at all): it says why, with no numbers to show. */
export function withoutEvidence(
  rule: RuleName,
  status: 'pending' | 'skipped',
  limit: string,
  alpha: number,
  summary: string,
): RuleEvidence {
  return { rule, status, limit, canary: null, baseline: null, eValue: 1, pValue: 1, alpha, summary };
}

/** How many canary requests (beyond `n`) until `passes(x, n)` holds, if the rate `rate` holds. */
export function requestsNeeded(rate: number, n: number, passes: (x: number, n: number) => boolean): number | null {
  const base = Math.max(n, 1);
  const f = scaleToPass((f) => passes(rate * base * f, base * f));
  return Number.isFinite(f) ? Math.max(1, Math.ceil(base * f - n)) : null;
}

/**
 * One-sample rule on the canary alone: "the share of canary requests with the event is at most
 * `limit`". Rollback when the always-valid test rejects that (uniform mixture: fast on gross
 * failures); pass when the matching test rejects "the share is at least `limit`".
 */
export function oneSampleRule(
  ctx: RuleContext,
  o: {
    rule: RuleName;
    x: number;
    n: number;
    limit: number;
    alpha: number;
    limitText: string;
    what: string;
    baseline: { x: number; n: number } | null;
    passPrior: BetaPrior;
    failPrior: BetaPrior | readonly BetaPrior[];
    /**
     * Judge against the baseline's concurrent share too (latency): roll back only when the
     * canary is above the limit AND above the baseline's own share (the stratified ratio test),
     * and pass when either the limit or "at most `limit` above the baseline's share" is shown —
     * so a slowdown of the whole machine, which the baseline feels too, is nobody's fault.
     */
    relative?: StratumCounts[];
    /**
     * The variance inflation of the events (users' clustered errors, evidence/clusters.ts):
     * the tests count each request as 1/inflation of an independent one (1: as they are).
     */
    inflation?: ErrorInflation;
  },
): RuleEvidence {
  const { x: xShown, n: nShown, limit, alpha } = o;
  const inflation = o.inflation ?? NO_INFLATION;
  const x = xShown / inflation.canary,
    n = nShown / inflation.canary;
  const b = o.baseline && { x: o.baseline.x / inflation.baseline, n: o.baseline.n / inflation.baseline };
  const concurrent = o.relative !== undefined && b !== null && b.n > 0;
  const lnOne = lnOneSidedE(x, n, limit, 'above', o.failPrior);
  const lnE = concurrent ? Math.min(lnOne, lnRatioE(o.relative!)) : lnOne;
  const half = ctx.beta / 2;
  const passes = (x: number, n: number, g = 1) =>
    lnOneSidedE(x, n, limit, 'below', o.passPrior) >= Math.log(1 / ctx.beta) ||
    (concurrent && n > 0 && rateBound(x, n, half, 'upper') - rateBound(b!.x * g, b!.n * g, half, 'lower') < limit);
  const est = n > 0 ? xShown / nShown : null;
  const bounded = ctx.explain && n > 0;
  const canary = {
    estimate: est,
    low: bounded ? rateBound(x, n, ctx.beta, 'lower', UNIFORM) : null,
    high: bounded ? rateBound(x, n, ctx.beta, 'upper', o.passPrior) : null,
    n: nShown,
    events: xShown,
  };
  const baseline = o.baseline
    ? {
        estimate: o.baseline.n > 0 ? o.baseline.x / o.baseline.n : null,
        low: null,
        high: null,
        n: o.baseline.n,
        events: o.baseline.x,
      }
    : null;
  const base = {
    rule: o.rule,
    limit: o.limitText,
    canary,
    baseline,
    eValue: Math.exp(Math.min(lnE, 700)),
    pValue: pFromLnE(lnE),
    alpha,
  };
  const bounds =
    canary.low !== null && canary.high !== null
      ? `; ${Math.round((1 - ctx.beta) * 100)}% bounds ${pct(canary.low)}–${pct(canary.high)}`
      : '';
  const evidence =
    n === 0
      ? `${o.what}: no canary requests yet`
      : `${o.what} ${pct(est)} (${xShown}/${nShown}${bounds})${clusteringText(inflation)}`;
  const versus = concurrent ? ` and above the baseline's own ${pct(b!.x / b!.n)}` : '';
  // Above the limit on its own, but not above the baseline over the same steps: a fault both
  // versions share (a dependency's outage, a burst, a slow machine). Said, never a rollback.
  const shared =
    concurrent && lnOne >= Math.log(1 / alpha) && lnE < Math.log(1 / alpha)
      ? ` — above ${pct(limit)}, but so is the baseline (${pct(b!.x / b!.n)}) over the same steps: a fault both versions share, not the canary's`
      : '';
  if (lnE >= Math.log(1 / alpha))
    return {
      ...base,
      status: 'fail',
      summary: `${evidence} is above ${pct(limit)}${versus} (always-valid p=${fmtP(base.pValue)} ≤ ${fmtP(alpha)})`,
    };
  if (lnE >= Math.log(1 / alpha) / 2)
    return {
      ...base,
      status: 'warn',
      summary: `${evidence}: evidence building that it is above ${pct(limit)}${versus} (p=${fmtP(base.pValue)}; rolls back at ${fmtP(alpha)})${shared}`,
    };
  if (passes(x, n))
    return {
      ...base,
      status: 'pass',
      summary: `${evidence} is within ${pct(limit)}${concurrent ? ` (or of the baseline's own ${pct(b!.x / b!.n)})` : ''}${shared}`,
    };
  if (!ctx.explain) return { ...base, status: 'pending', summary: evidence + shared };
  const rate = n >= 20 ? x / n : b && b.n > 0 ? b.x / b.n : 0;
  // Scaling the canary's n by f scales the baseline's by the same f (traffic grows together).
  const base0 = Math.max(n, 1);
  const effectiveNeeded = requestsNeeded(rate, n, (xs, ns) => passes(xs, ns, ns / base0));
  const requests = effectiveNeeded === null ? null : Math.ceil(effectiveNeeded * inflation.canary);
  const needs = { requests, seconds: requests !== null && ctx.canaryRate ? requests / ctx.canaryRate : null };
  return {
    ...base,
    status: 'pending',
    needs,
    summary: `${evidence}: not yet shown to be within ${pct(limit)}${needsText(needs)}${shared}`,
  };
}

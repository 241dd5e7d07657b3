import { countAbove, quantile } from '../../proxy/telemetry/histogram.js';
import type { AgreementCounts, VersionStats } from '../../proxy/telemetry/stats.js';
import { businessTest, type OutcomeStats } from './business.js';
import { AUTO_STEPS, type Policy, type ShadowPolicy } from './policy.js';
import {
  type BetaPrior,
  lnOneSidedE,
  lnRatioE,
  pFromLnE,
  priorWithMean,
  rateBound,
  type StratumCounts,
  scaleToPass,
  UNIFORM,
} from './sequential.js';

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

/** Per-variant counts of one step: requests, model errors, and requests above the latency limits. */
export interface StepCounts {
  n: number;
  errors: number;
  slow95: number;
  slow99: number;
}

/** The latency limits of one step, fixed once from the baseline's latency (never from the canary's). */
export interface LatencyLimits {
  /** The canary's p95 must stay at or under this: baseline p95 + latencyP95DeltaMs (or × latencyP95Ratio). */
  p95Ms: number;
  /** The canary's p99 must stay at or under this: latencyP99Ratio × baseline p99. */
  p99Ms: number;
  baselineP95Ms: number;
  baselineP99Ms: number;
}

/** One finished step (a stratum of the evidence): its weight, time span and counts. */
export interface Stratum {
  weight: number;
  from: number;
  to: number;
  limits: LatencyLimits | null;
  canary: StepCounts;
  baseline: StepCounts;
}

/** What decide() remembers of a canary between analyses (persisted with the canary). */
export interface CanaryProgress {
  weight: number;
  /** Epoch ms the current step (weight) began; its stats are read from here. */
  stepStartedAt: number;
  paused: boolean;
  /** The canary's finished steps: evidence accumulates over its whole life. */
  strata?: Stratum[];
  /** The current step's latency limits, once fixed. */
  limits?: LatencyLimits | null;
  /** The current step as the last analysis saw it: folded into `strata` if the weight is changed by hand. */
  lastStep?: Stratum | null;
  /** Since when the p99 test has said the canary's p99 is over its limit; never reset while the canary runs. */
  p99BreachSince: number | null;
  /** Since when the business metric has shown a significant drop; null if not. */
  businessBreachSince?: number | null;
  /** "shadow" while the canary is in its shadow phase (weight 0, policy.shadow); absent once live. */
  phase?: 'shadow';
}

/** Outcomes per variant since the canary started, when feedback is being sent. */
export type BusinessInput = { baseline: OutcomeStats; canary: OutcomeStats } | null;

/**
 * Stats of the current step ([stepStartedAt, now]) per variant, and, while the step's latency
 * limits are not fixed yet, the baseline's stats from the `window` before the step.
 */
export type StatsInput =
  | {
      baseline: VersionStats;
      canary: VersionStats;
      reference?: VersionStats | null;
      business?: BusinessInput;
    }
  | { error: string };

export type Action =
  /** `fromShadow`: the shadow gate passed; the weight is the first live step. */
  | { type: 'advance'; weight: number; fromShadow?: boolean }
  | { type: 'promote' }
  | { type: 'rollback' }
  /** Critical with autoRollback off: the failure is recorded, nothing else happens. */
  | { type: 'record_failure' };

export type RuleName = 'error_rate_max' | 'error_rate_delta' | 'latency_p95' | 'latency_p99' | 'business' | 'agreement';

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
}

/**
 * How the false-rollback budget (policy.falseRollbackRate) is split across the rollback tests.
 * By the union bound, P(any rule rolls back a canary as good as the baseline) ≤ the budget.
 */
export const ALPHA_SHARES: Readonly<Record<RuleName, number>> = Object.freeze({
  error_rate_max: 0.25,
  error_rate_delta: 0.25,
  latency_p95: 0.15,
  latency_p99: 0.15,
  business: 0.1,
  agreement: 0.1,
});

/** Baseline requests needed before a step's latency limits are fixed (p99 of 300 is ±~30%, limits are 2×). */
export const MIN_REFERENCE_REQUESTS = 300;
/** A clean canary should decide within this many intervals at the weight steps: "auto" starts at. */
export const AUTO_DECIDE_INTERVALS = 10;

const EPS = 1e-9;
const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);
const ms = (x: number | null) => (x === null ? '-' : `${x.toFixed(1)}ms`);
const dur = (s: number) =>
  s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
const ZERO: StepCounts = Object.freeze({ n: 0, errors: 0, slow95: 0, slow99: 0 });
const NO_AGREEMENT: AgreementCounts = Object.freeze({
  compared: 0,
  agreed: 0,
  errors: 0,
  timeouts: 0,
  dropped: 0,
  noiseCompared: 0,
  noiseAgreed: 0,
});

/** The weight after `weight` in the policy's steps, or null when the ramp is done. */
export function nextStep(policy: Policy, weight: number): number | null {
  return policy.steps.find((s) => s > weight + EPS) ?? null;
}

/** The limits that follow from a baseline's latency histogram, or null with too little of it. */
export function latencyLimits(policy: Policy, baseline: VersionStats | null | undefined): LatencyLimits | null {
  if (!baseline?.histogram || baseline.requests < MIN_REFERENCE_REQUESTS) return null;
  const b95 = quantile(baseline.histogram, 0.95),
    b99 = quantile(baseline.histogram, 0.99);
  if (b95 === null || b99 === null) return null;
  const t = policy.thresholds;
  return {
    p95Ms: Math.max(b95 + t.latencyP95DeltaMs, (t.latencyP95Ratio ?? 0) * b95),
    p99Ms: t.latencyP99Ratio * b99,
    baselineP95Ms: b95,
    baselineP99Ms: b99,
  };
}

function countsOf(s: VersionStats, limits: LatencyLimits | null): StepCounts {
  const h = s.histogram;
  return {
    n: s.requests,
    errors: s.modelErrors,
    slow95: limits && h ? countAbove(h, limits.p95Ms) : 0,
    slow99: limits && h ? countAbove(h, limits.p99Ms) : 0,
  };
}

const add = (a: StepCounts, b: StepCounts): StepCounts => ({
  n: a.n + b.n,
  errors: a.errors + b.errors,
  slow95: a.slow95 + b.slow95,
  slow99: a.slow99 + b.slow99,
});

/** How many canary requests (beyond `n`) until `passes(x, n)` holds, if the rate `rate` holds. */
function requestsNeeded(rate: number, n: number, passes: (x: number, n: number) => boolean): number | null {
  const base = Math.max(n, 1);
  const f = scaleToPass((f) => passes(rate * base * f, base * f));
  return Number.isFinite(f) ? Math.max(1, Math.ceil(base * f - n)) : null;
}

interface RuleContext {
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
}

/**
 * One-sample rule on the canary alone: "the share of canary requests with the event is at most
 * `limit`". Rollback when the always-valid test rejects that (uniform mixture: fast on gross
 * failures); pass when the matching test rejects "the share is at least `limit`".
 */
function oneSampleRule(
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
  },
): RuleEvidence {
  const { x, n, limit, alpha } = o;
  const b = o.baseline;
  const concurrent = o.relative !== undefined && b !== null && b.n > 0;
  const lnOne = lnOneSidedE(x, n, limit, 'above', o.failPrior);
  const lnE = concurrent ? Math.min(lnOne, lnRatioE(o.relative!)) : lnOne;
  const half = ctx.beta / 2;
  const passes = (x: number, n: number, g = 1) =>
    lnOneSidedE(x, n, limit, 'below', o.passPrior) >= Math.log(1 / ctx.beta) ||
    (concurrent && n > 0 && rateBound(x, n, half, 'upper') - rateBound(b!.x * g, b!.n * g, half, 'lower') < limit);
  const est = n > 0 ? x / n : null;
  const bounded = ctx.explain && n > 0;
  const canary = {
    estimate: est,
    low: bounded ? rateBound(x, n, ctx.beta, 'lower', UNIFORM) : null,
    high: bounded ? rateBound(x, n, ctx.beta, 'upper', o.passPrior) : null,
    n,
    events: x,
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
  const evidence = n === 0 ? `${o.what}: no canary requests yet` : `${o.what} ${pct(est)} (${x}/${n}${bounds})`;
  const versus = concurrent ? ` and above the baseline's own ${pct(b!.x / b!.n)}` : '';
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
      summary: `${evidence}: evidence building that it is above ${pct(limit)} (p=${fmtP(base.pValue)}; rolls back at ${fmtP(alpha)})`,
    };
  if (passes(x, n))
    return {
      ...base,
      status: 'pass',
      summary: `${evidence} is within ${pct(limit)}${concurrent ? ` (or of the baseline's own ${pct(b!.x / b!.n)})` : ''}`,
    };
  if (!ctx.explain) return { ...base, status: 'pending', summary: evidence };
  const rate = n >= 20 ? x / n : b && b.n > 0 ? b.x / b.n : 0;
  // Scaling the canary's n by f scales the baseline's by the same f (traffic grows together).
  const base0 = Math.max(n, 1);
  const requests = requestsNeeded(rate, n, (xs, ns) => passes(xs, ns, ns / base0));
  const needs = { requests, seconds: requests !== null && ctx.canaryRate ? requests / ctx.canaryRate : null };
  return {
    ...base,
    status: 'pending',
    needs,
    summary: `${evidence}: not yet shown to be within ${pct(limit)}${needsText(needs)}`,
  };
}

const fmtP = (p: number) => (p >= 0.001 ? p.toFixed(3) : p.toExponential(1));
const needsText = (n: { requests: number | null; seconds: number | null }) =>
  n.requests === null
    ? ' (not expected at the current rate)'
    : `; needs ≈ ${n.requests} more canary requests${n.seconds !== null ? ` (≈ ${dur(n.seconds)})` : ''}`;

function errorMaxRule(ctx: RuleContext): RuleEvidence {
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

/** Relative error rate: rollback on the stratified ratio test; pass when canary − baseline < delta with confidence. */
function errorDeltaRule(ctx: RuleContext): RuleEvidence {
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
  const strata: StratumCounts[] = ctx.strata.map((s) => ({
    canary: { n: s.canary.n, events: s.canary.errors },
    baseline: { n: s.baseline.n, events: s.baseline.errors },
  }));
  const lnE = lnRatioE(strata);
  const half = ctx.beta / 2;
  const bounds = (x: number, n: number) => ({
    low: ctx.explain && n > 0 ? rateBound(x, n, half, 'lower') : null,
    high: ctx.explain && n > 0 ? rateBound(x, n, half, 'upper') : null,
  });
  const cb = bounds(c.errors, c.n),
    bb = bounds(b.errors, b.n);
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
  const evidence = `canary error rate ${pct(cEst)} (${c.errors}/${c.n}) vs baseline ${pct(bEst)} (${b.errors}/${b.n})`;
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
    rateBound(xc, m, half, 'upper') - rateBound(b.errors * g, b.n * g, half, 'lower') < delta;
  if (c.n > 0 && passAt(c.errors, c.n, 1)) {
    const margin = cb.high !== null && bb.low !== null ? `at most ${pct(cb.high - bb.low)} above the baseline, ` : '';
    return { ...base, status: 'pass', summary: `${evidence}: ${margin}within +${pct(delta)}` };
  }
  if (!ctx.explain) return { ...base, status: 'pending', summary: evidence };
  const rateC = c.n >= 20 ? c.errors / c.n : bEst;
  const base0 = Math.max(c.n, 1);
  const scale = scaleToPass((f) => passAt(rateC * base0 * f, base0 * f, f));
  const requests = Number.isFinite(scale) ? Math.max(1, Math.ceil(base0 * scale - c.n)) : null;
  const needs = { requests, seconds: requests !== null && ctx.canaryRate ? requests / ctx.canaryRate : null };
  return {
    ...base,
    status: 'pending',
    needs,
    summary: `${evidence}: not yet shown to be within +${pct(delta)}${needsText(needs)}`,
  };
}

function latencyRule(ctx: RuleContext, which: 'p95' | 'p99'): RuleEvidence {
  const rule: RuleName = which === 'p95' ? 'latency_p95' : 'latency_p99';
  const alpha = alphaFor(ctx.policy, rule);
  const share = which === 'p95' ? 0.05 : 0.01;
  // Latency is judged only where the baseline served at the same time: at 100% the canary
  // carries the whole load and nothing measured at that load and time compares with it — the
  // few baseline requests such a step may show (stats flushed late, a route a moment stale)
  // included — so that step adds no latency evidence (errors are still judged).
  const concurrent = ctx.strata.filter((s) => s.weight < 100 && s.baseline.n > 0);
  const limited = concurrent.filter((s) => s.limits !== null);
  const current = ctx.strata[ctx.strata.length - 1].limits;
  const t = ctx.policy.thresholds;
  const limitText =
    which === 'p95'
      ? `canary p95 ≤ baseline p95 + ${t.latencyP95DeltaMs}ms${t.latencyP95Ratio ? ` (or × ${t.latencyP95Ratio})` : ''}${current ? ` = ${ms(current.p95Ms)}` : ''}`
      : `canary p99 ≤ ${t.latencyP99Ratio} × baseline p99${current ? ` = ${ms(current.p99Ms)}` : ''}`;
  if (limited.length === 0) {
    if (concurrent.length === 0) {
      return {
        rule,
        status: 'skipped',
        limit: limitText,
        canary: null,
        baseline: null,
        eValue: 1,
        pValue: 1,
        alpha,
        summary: 'the baseline had no traffic while the canary ran: latency cannot be compared (errors still are)',
      };
    }
    return {
      rule,
      status: 'pending',
      limit: limitText,
      canary: null,
      baseline: null,
      eValue: 1,
      pValue: 1,
      alpha,
      summary: `waiting for ${MIN_REFERENCE_REQUESTS} baseline requests to fix the latency limit from the baseline's own ${which}`,
    };
  }
  const x = limited.reduce((a, s) => a + (which === 'p95' ? s.canary.slow95 : s.canary.slow99), 0);
  const n = limited.reduce((a, s) => a + s.canary.n, 0);
  const bx = limited.reduce((a, s) => a + (which === 'p95' ? s.baseline.slow95 : s.baseline.slow99), 0);
  const bn = limited.reduce((a, s) => a + s.baseline.n, 0);
  const slow = (c: StepCounts) => (which === 'p95' ? c.slow95 : c.slow99);
  const relative = limited.map((s) => ({
    canary: { n: s.canary.n, events: slow(s.canary) },
    baseline: { n: s.baseline.n, events: slow(s.baseline) },
  }));
  // "p95 ≤ L" is "at most 5% of requests above L": a one-sample test on the share above L,
  // judged against the baseline's concurrent share above the same L.
  return oneSampleRule(ctx, {
    relative,
    rule,
    x,
    n,
    limit: share,
    alpha,
    limitText,
    what: `share of canary requests over the ${which} limit`,
    // Rollback mixes the uniform prior (fast on gross slowness) with one centred at 3× the
    // allowed share (power against tails a few times too heavy, like a p99 three times the baseline's).
    baseline: { x: bx, n: bn },
    passPrior: priorWithMean(share / 4),
    failPrior: [UNIFORM, priorWithMean(3 * share)],
  });
}

function businessRule(
  progress: CanaryProgress,
  policy: Policy,
  business: BusinessInput,
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
  const t = businessTest(b, c, policy.businessDropMax, policy.confidence);
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

/**
 * Shadow agreement: the share of compared shadow answers that disagree with the baseline's,
 * as a one-sample always-valid test like the absolute error rule — roll back when the evidence
 * says agreement is below `agreementMin`, pass when its lower bound is at or above it. With
 * `relativeToNoise`, judged against the baseline's disagreement with itself as latency is
 * against the baseline's concurrent share.
 */
function agreementRule(
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

export function alphaFor(policy: Policy, rule: RuleName): number {
  return (policy.falseRollbackRate ?? 0.01) * ALPHA_SHARES[rule];
}

/** The current step as a stratum, from the stats read over [stepStartedAt, now]. */
function currentStratum(
  progress: CanaryProgress,
  limits: LatencyLimits | null,
  stats: { baseline: VersionStats; canary: VersionStats },
  now: number,
): Stratum {
  return {
    weight: progress.weight,
    from: progress.stepStartedAt,
    to: now,
    limits,
    canary: countsOf(stats.canary, limits),
    baseline: countsOf(stats.baseline, limits),
  };
}

/**
 * The absolute error-rate rule alone, on the canary's counts: what the fast path evaluates at
 * every stats flush so a grossly failing canary is rolled back within seconds.
 */
export function grossFailure(progress: CanaryProgress, policy: Policy, canaryStep: VersionStats): RuleEvidence {
  const canary = (progress.strata ?? []).reduce((a, s) => add(a, s.canary), countsOf(canaryStep, null));
  return errorMaxRule({
    policy,
    strata: [],
    canary,
    baseline: ZERO,
    canaryRate: null,
    beta: 1 - policy.confidence,
    explain: false,
  });
}

/**
 * The weight steps: "auto" starts at: the smallest of 1, 10, 50 at which a canary as good as
 * the baseline (its error rate and latency) would pass every rule within AUTO_DECIDE_INTERVALS
 * intervals, given the baseline's request rate before the canary (`baseline` over `spanMs`).
 */
export function autoStartWeight(policy: Policy, baseline: VersionStats | null, spanMs: number): number {
  const candidates = AUTO_STEPS.filter((w) => w < 100);
  if (!baseline || baseline.requests === 0 || spanMs <= 0) return candidates[0];
  const rps = baseline.requests / (spanMs / 1000);
  const limits = latencyLimits(policy, baseline);
  const counts = countsOf(baseline, limits);
  const needed = cleanCanaryRequests(policy, counts, limits !== null);
  for (const w of candidates)
    if (needed !== null && ((rps * w) / 100) * (policy.intervalMs / 1000) * AUTO_DECIDE_INTERVALS >= needed) return w;
  return candidates[candidates.length - 1];
}

/** Canary requests a canary behaving like `like` needs for every rule to pass (null: never). */
function cleanCanaryRequests(policy: Policy, like: StepCounts, withLatency: boolean): number | null {
  const n = Math.max(like.n, 1);
  const scale = (c: StepCounts, f: number): StepCounts => ({
    n: c.n * f,
    errors: c.errors * f,
    slow95: c.slow95 * f,
    slow99: c.slow99 * f,
  });
  const allPass = (m: number) => {
    const canary = scale(like, m / n);
    const strata: Stratum[] = [{ weight: 1, from: 0, to: 0, limits: null, canary, baseline: like }];
    const ctx: RuleContext = {
      policy,
      strata,
      canary,
      baseline: like,
      canaryRate: null,
      beta: 1 - policy.confidence,
      explain: false,
    };
    const rules = [errorMaxRule(ctx), errorDeltaRule(ctx)];
    if (withLatency) {
      const limits = { p95Ms: 0, p99Ms: 0, baselineP95Ms: 0, baselineP99Ms: 0 };
      const lctx = { ...ctx, strata: [{ ...strata[0], limits }] };
      rules.push(latencyRule(lctx, 'p95'), latencyRule(lctx, 'p99'));
    }
    return rules.every((r) => r.status === 'pass' || r.status === 'skipped');
  };
  const f = scaleToPass((f) => allPass(policy.minRequests * f));
  return Number.isFinite(f) ? Math.ceil(policy.minRequests * f) : null;
}

/**
 * The canary brain. Pure: no I/O, no clock — `now` is an argument — so whole rollouts can be
 * replayed on a fake clock (`npm run sim`). Returns the verdict, each rule's evidence, what to
 * do, and the new progress. Evidence accumulates over the canary's whole life: each finished
 * step is a stratum, so looking more often or advancing never resets it.
 */
export function decide(
  progress: CanaryProgress,
  policy: Policy,
  stats: StatsInput,
  now: number,
  opts: { explain?: boolean } = {},
): Decision {
  if ('error' in stats)
    return { verdict: 'error', reasons: [`metrics unavailable: ${stats.error}`], actions: [], progress, rules: [] };

  // The step's latency limits are fixed once, from the baseline before the step or, failing
  // that, the baseline during it — never from the canary, so the latency tests stay valid.
  const baselineNow = stats.baseline;
  const limits = progress.limits ?? latencyLimits(policy, stats.reference) ?? latencyLimits(policy, baselineNow);
  const current = currentStratum(progress, limits, stats, now);
  const strata = [...(progress.strata ?? []), current];
  const canary = strata.reduce((a, s) => add(a, s.canary), ZERO);
  const baseline = strata.reduce((a, s) => add(a, s.baseline), ZERO);
  const elapsedS = (now - progress.stepStartedAt) / 1000;
  const canaryRate = elapsedS > 0 && current.canary.n > 0 ? current.canary.n / elapsedS : null;
  const ctx: RuleContext = {
    policy,
    strata,
    canary,
    baseline,
    canaryRate,
    beta: 1 - policy.confidence,
    explain: opts.explain ?? true,
  };

  const rules = [errorMaxRule(ctx), errorDeltaRule(ctx), latencyRule(ctx, 'p95'), latencyRule(ctx, 'p99')];
  // p99 is a sustained rule: once its test rejects, the clock runs until latencyP99For, and
  // neither a clean look nor a step advance resets it.
  const p99 = rules[3];
  let p99BreachSince = progress.p99BreachSince;
  if (p99.status === 'fail') {
    p99BreachSince ??= now;
    const held = now - p99BreachSince;
    if (held < policy.thresholds.latencyP99ForMs) {
      rules[3] = {
        ...p99,
        status: 'warn',
        summary: `${p99.summary}; for ${Math.round(held / 1000)}s of the ${Math.round(policy.thresholds.latencyP99ForMs / 1000)}s it must last`,
      };
    } else {
      rules[3] = {
        ...p99,
        summary: `${p99.summary}, for ${Math.round(held / 1000)}s (limit ${Math.round(policy.thresholds.latencyP99ForMs / 1000)}s)`,
      };
    }
  } else if (p99BreachSince !== null) {
    rules[3] = {
      ...p99,
      status: 'warn',
      summary: `${p99.summary}; p99 has been over its limit since ${Math.round((now - p99BreachSince) / 1000)}s ago`,
    };
  }
  // In shadow no user got an answer from the canary: no business outcomes, but agreement.
  const shadow = progress.phase === 'shadow' ? (policy.shadow ?? null) : null;
  const business = shadow
    ? { rule: null, breachSince: null }
    : businessRule(progress, policy, stats.business ?? null, now);
  if (business.rule) rules.push(business.rule);
  if (shadow)
    rules.push(
      agreementRule(ctx, shadow, stats.canary.agreement ?? NO_AGREEMENT, stats.baseline.agreement ?? NO_AGREEMENT),
    );

  const next: CanaryProgress = {
    ...progress,
    limits,
    lastStep: current,
    p99BreachSince,
    businessBreachSince: business.breachSince,
  };
  const failing = rules.filter((r) => r.status === 'fail');
  const warning = rules.filter((r) => r.status === 'warn');
  const pending = rules.filter((r) => r.status === 'pending');

  if (failing.length)
    return act(
      'critical',
      failing.map((r) => r.summary),
    );
  if (warning.length)
    return {
      verdict: 'degraded',
      reasons: [...warning.map((r) => r.summary), `holding at ${progress.weight}%`],
      actions: [],
      progress: next,
      rules,
    };
  if (pending.length || canary.n < policy.minRequests) return inconclusive();
  return act('healthy', [
    `every rule within its limit at ${Math.round(policy.confidence * 100)}% confidence over ${canary.n} canary requests`,
  ]);

  function inconclusive(): Decision {
    const reasons = pending.map((r) => r.summary);
    if (canary.n < policy.minRequests)
      reasons.push(
        `${canary.n} canary requests so far; never advances on fewer than minRequests ${policy.minRequests}`,
      );
    const counted = pending.map((r) => r.needs).filter((n): n is NonNullable<typeof n> => !!n);
    const requests = counted.some((n) => n.requests === null)
      ? null
      : Math.max(policy.minRequests - canary.n, ...counted.map((n) => n.requests!), 0);
    const seconds = requests !== null && canaryRate ? requests / canaryRate : null;
    let advice: string | null = null;
    const leftS = policy.maxStepDurationMs / 1000 - elapsedS;
    if (canaryRate && progress.weight > 0 && requests !== null && seconds !== null && seconds > leftS) {
      const totalRps = canaryRate / (progress.weight / 100);
      const better = AUTO_STEPS.find(
        (w) =>
          w > progress.weight && requests / ((totalRps * w) / 100) <= Math.max(leftS, policy.maxStepDurationMs / 1000),
      );
      const firstStep = !progress.strata?.length;
      advice = `at ${progress.weight}% of ${totalRps.toFixed(1)} rps this step needs ≈ ${dur(seconds)} more to decide, past maxStepDuration ${dur(policy.maxStepDurationMs / 1000)}${better ? `; ${firstStep ? 'start at' : 'set the weight to'} ${better}%` : '; send more traffic or widen the thresholds'}`;
      reasons.push(advice);
    } else if (elapsedS * 1000 > policy.maxStepDurationMs) {
      advice = `this step has run ${dur(elapsedS)}, past maxStepDuration ${dur(policy.maxStepDurationMs / 1000)}, without a decision`;
      reasons.push(advice);
    }
    return {
      verdict: 'inconclusive',
      reasons,
      actions: [],
      progress: next,
      rules,
      needs: { requests, seconds, advice },
    };
  }

  function act(verdict: 'critical' | 'healthy', reasons: string[]): Decision {
    const d = (actions: Action[], extra: string[] = [], p = next): Decision => ({
      verdict,
      reasons: [...reasons, ...extra],
      actions,
      progress: p,
      rules,
    });
    if (next.paused) return d([], ['paused: no action taken']);
    if (verdict === 'critical') return d([policy.autoRollback ? { type: 'rollback' } : { type: 'record_failure' }]);
    if (shadow && now - next.stepStartedAt < shadow.durationMs)
      return d([], [`in shadow until it has lasted ${Math.round(shadow.durationMs / 1000)}s`]);
    if (!shadow && now - next.stepStartedAt < policy.stepDurationMs)
      return d(
        [],
        [`holding at ${next.weight}% until the step has lasted ${Math.round(policy.stepDurationMs / 1000)}s`],
      );
    // Past the shadow gate, the first step (steps "auto": from the traffic the baseline served,
    // all of it, during the shadow phase); otherwise the next one.
    const weight = !shadow
      ? nextStep(policy, next.weight)
      : policy.autoSteps
        ? autoStartWeight(policy, baselineNow, now - progress.stepStartedAt)
        : policy.steps[0];
    if (weight !== null) {
      // The finished step (or the shadow phase, at weight 0) becomes a stratum; the next step's
      // latency limits come from the baseline's latency during it (the most recent load), or
      // carry over when it had none.
      const nextLimits = latencyLimits(policy, baselineNow) ?? limits;
      return d(
        [shadow ? { type: 'advance', weight, fromShadow: true } : { type: 'advance', weight }],
        shadow ? ['shadow passed: the canary goes live'] : [],
        { ...next, phase: undefined, strata, lastStep: null, weight, stepStartedAt: now, limits: nextLimits },
      );
    }
    if (!policy.autoPromote) return d([], ['last step reached; autoPromote is off']);
    return d([{ type: 'promote' }]);
  }
}

/**
 * A weight changed outside decide() (by hand): the current step, as the last analysis saw it,
 * becomes a stratum and a new step starts. Its latency limits are fixed afresh.
 */
export function foldStep(progress: CanaryProgress, weight: number, at: number): CanaryProgress {
  const strata = progress.lastStep ? [...(progress.strata ?? []), progress.lastStep] : (progress.strata ?? []);
  // A weight set by hand also ends a shadow phase: the person chose to go live.
  return { ...progress, strata, lastStep: null, weight, stepStartedAt: at, limits: null, phase: undefined };
}

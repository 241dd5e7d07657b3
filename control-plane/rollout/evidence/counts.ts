import { countAbove, quantile } from '../../../proxy/contract/histogram.js';
import { addKeyGroups, noKeyGroups } from '../../../proxy/contract/key-groups.js';
import type { VersionStats } from '../../../proxy/contract/stats.js';
import type { Policy } from '../../model/policy.js';
import type { CanaryProgress, LatencyLimits, StepCounts, Stratum } from '../../model/progress.js';

/** A step's counts per variant, from the mergeable stats: requests, model errors, requests over the latency limits. */

/** Baseline requests needed before a step's latency limits are fixed (p99 of 300 is ±~30%, limits are 2×). */
export const MIN_REFERENCE_REQUESTS = 300;
/** Baseline streams needed before a step's TPOT and length limits are fixed (medians: ±~7% at 200). */
export const MIN_REFERENCE_STREAMS = 200;
export const ZERO: StepCounts = Object.freeze({
  n: 0,
  errors: 0,
  slow95: 0,
  slow99: 0,
  tpotN: 0,
  slowTpot: 0,
  tokensN: 0,
  longAnswers: 0,
});

const total = (b: Map<number, number>) => {
  let n = 0;
  for (const c of b.values()) n += c;
  return n;
};

/** The stream limits from the baseline's streams: medians times the policy's ratios. */
function streamLimits(policy: Policy, baseline: VersionStats): Partial<LatencyLimits> {
  const h = baseline.streams?.histograms;
  if (!h) return {};
  const t = policy.thresholds;
  const tpot = total(h.tpot) >= MIN_REFERENCE_STREAMS ? quantile(h.tpot, 0.5) : null;
  const tokens = t.outputTokensRatio && total(h.tokens) >= MIN_REFERENCE_STREAMS ? quantile(h.tokens, 0.5) : null;
  return {
    tpotMs: tpot === null ? null : tpot * (t.tpotRatio ?? 1.2),
    baselineTpotMs: tpot,
    tokensLimit: tokens === null ? null : tokens * t.outputTokensRatio!,
    baselineTokens: tokens,
  };
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
    ...streamLimits(policy, baseline),
  };
}

/** `limits` with any stream limit still missing filled in from the first baseline stats that can fix it. */
export function withStreamLimits(
  policy: Policy,
  limits: LatencyLimits | null,
  baselines: (VersionStats | null | undefined)[],
): LatencyLimits | null {
  let out = limits;
  for (const b of baselines) {
    if (!out || (out.tpotMs && (out.tokensLimit || !policy.thresholds.outputTokensRatio))) break;
    if (!b) continue;
    const s = streamLimits(policy, b);
    out = {
      ...out,
      tpotMs: out.tpotMs ?? s.tpotMs ?? null,
      baselineTpotMs: out.baselineTpotMs ?? s.baselineTpotMs ?? null,
      tokensLimit: out.tokensLimit ?? s.tokensLimit ?? null,
      baselineTokens: out.baselineTokens ?? s.baselineTokens ?? null,
    };
  }
  return out;
}

/**
 * A version's counts in a step. With `latency` (the step after the canary's warm-up, or null
 * while it warms up) the latency counts come from there; requests and errors from the whole step.
 */
export function countsOf(all: VersionStats, limits: LatencyLimits | null, latency?: VersionStats | null): StepCounts {
  const s = latency === undefined ? all : latency;
  const keyed = {
    ...(all.keyGroups ? { keyed: [...all.keyGroups.requests, ...all.keyGroups.errors] } : {}),
    ...(all.routed ? { routed: all.routed } : {}),
  };
  if (s === null)
    return {
      ...ZERO,
      n: all.requests,
      errors: all.modelErrors,
      latencyN: 0,
      retryFailed: all.retryFailed ?? 0,
      ...keyed,
    };
  const h = s.histogram;
  const sh = s.streams?.histograms;
  return {
    n: all.requests,
    errors: all.modelErrors,
    ...(s === all ? {} : { latencyN: s.requests }),
    slow95: limits && h ? countAbove(h, limits.p95Ms) : 0,
    slow99: limits && h ? countAbove(h, limits.p99Ms) : 0,
    tpotN: sh ? total(sh.tpot) : 0,
    slowTpot: sh && limits?.tpotMs ? countAbove(sh.tpot, limits.tpotMs) : 0,
    tokensN: sh ? total(sh.tokens) : 0,
    longAnswers: sh && limits?.tokensLimit ? countAbove(sh.tokens, limits.tokensLimit) : 0,
    retryFailed: all.retryFailed ?? 0,
    ...keyed,
  };
}

/** The requests a version's latency counts cover. */
export const latencyN = (c: StepCounts): number => c.latencyN ?? c.n;

/** Counts added field by field (steps stored before a field existed count it as 0). */
export const add = (a: StepCounts, b: StepCounts): StepCounts => ({
  n: a.n + b.n,
  errors: a.errors + b.errors,
  latencyN: latencyN(a) + latencyN(b),
  slow95: a.slow95 + b.slow95,
  slow99: a.slow99 + b.slow99,
  tpotN: (a.tpotN ?? 0) + (b.tpotN ?? 0),
  slowTpot: (a.slowTpot ?? 0) + (b.slowTpot ?? 0),
  tokensN: (a.tokensN ?? 0) + (b.tokensN ?? 0),
  longAnswers: (a.longAnswers ?? 0) + (b.longAnswers ?? 0),
  retryFailed: (a.retryFailed ?? 0) + (b.retryFailed ?? 0),
  ...(a.keyed || b.keyed ? { keyed: addKeyed(a.keyed, b.keyed) } : {}),
  ...(a.routed || b.routed ? { routed: (a.routed ?? 0) + (b.routed ?? 0) } : {}),
});

function addKeyed(a: readonly number[] | undefined, b: readonly number[] | undefined): number[] {
  const out = noKeyGroups();
  if (a) addKeyGroups(out, a);
  if (b) addKeyGroups(out, b);
  return out;
}

/** The current step as a stratum, from the stats read over [stepStartedAt, now]. */
export function currentStratum(
  progress: CanaryProgress,
  limits: LatencyLimits | null,
  stats: {
    baseline: VersionStats;
    canary: VersionStats;
    latency?: { baseline: VersionStats; canary: VersionStats } | null;
  },
  now: number,
): Stratum {
  return {
    weight: progress.weight,
    from: progress.stepStartedAt,
    to: now,
    limits,
    canary: countsOf(stats.canary, limits, stats.latency === undefined ? undefined : (stats.latency?.canary ?? null)),
    baseline: countsOf(
      stats.baseline,
      limits,
      stats.latency === undefined ? undefined : (stats.latency?.baseline ?? null),
    ),
  };
}

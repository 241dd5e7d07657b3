import { countAbove, quantile } from '../../../proxy/contract/histogram.js';
import type { VersionStats } from '../../../proxy/contract/stats.js';
import type { Policy } from '../../model/policy.js';
import type { CanaryProgress, LatencyLimits, StepCounts, Stratum } from '../../model/progress.js';

/** A step's counts per variant, from the mergeable stats: requests, model errors, requests over the latency limits. */

/** Baseline requests needed before a step's latency limits are fixed (p99 of 300 is ±~30%, limits are 2×). */
export const MIN_REFERENCE_REQUESTS = 300;
export const ZERO: StepCounts = Object.freeze({ n: 0, errors: 0, slow95: 0, slow99: 0 });

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

export function countsOf(s: VersionStats, limits: LatencyLimits | null): StepCounts {
  const h = s.histogram;
  return {
    n: s.requests,
    errors: s.modelErrors,
    slow95: limits && h ? countAbove(h, limits.p95Ms) : 0,
    slow99: limits && h ? countAbove(h, limits.p99Ms) : 0,
  };
}

export const add = (a: StepCounts, b: StepCounts): StepCounts => ({
  n: a.n + b.n,
  errors: a.errors + b.errors,
  slow95: a.slow95 + b.slow95,
  slow99: a.slow99 + b.slow99,
});

/** The current step as a stratum, from the stats read over [stepStartedAt, now]. */
export function currentStratum(
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

import type { VersionStats } from '../../proxy/contract/stats.js';
import { AUTO_STEPS, type Policy } from '../model/policy.js';
import type { StepCounts, Stratum } from '../model/progress.js';
import { countsOf, latencyLimits } from './evidence/counts.js';
import type { RuleContext } from './evidence/one-sample.js';
import { scaleToPass } from './evidence/sequential.js';
import { errorDeltaRule } from './rules/error-rate-delta.js';
import { errorMaxRule } from './rules/error-rate-max.js';
import { latencyRule } from './rules/latency.js';

/** A clean canary should decide within this many intervals at the weight steps: "auto" starts at. */
export const AUTO_DECIDE_INTERVALS = 10;

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
export function cleanCanaryRequests(policy: Policy, like: StepCounts, withLatency: boolean): number | null {
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

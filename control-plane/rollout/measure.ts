import type { VersionStats } from '../../proxy/contract/stats.js';
import type { MetricsSource } from '../metrics/source.js';
import type { Policy } from '../model/policy.js';
import type { StatsInput } from '../model/progress.js';
import type { CanaryRow } from '../state/types.js';
import type { MeasureDeps } from './deps.js';
import { readWindows, warmupEarliest } from './schedule.js';

/**
 * Every stats read of the analysis, through the metrics source the canary's policy names:
 * the current step per variant over the spans the schedule gives, the baseline before the
 * step while its latency limits are not fixed, and business outcomes since the canary began.
 */
export class Measure {
  constructor(private readonly deps: MeasureDeps) {}

  /** The source a policy reads from (null: Prometheus named but not configured). */
  source(policy: Policy): MetricsSource | null {
    return (policy.metrics ?? 'proxy') === 'prometheus' ? (this.deps.prometheus ?? null) : this.deps.metrics;
  }

  /** decide()'s input for an analysis at `now`; `{error}` when the metrics cannot be read. */
  async step(c: CanaryRow, baselineVersion: string, now: number): Promise<StatsInput> {
    const source = this.source(c.policy);
    if (!source)
      return { error: 'policy.metrics is "prometheus" but no Prometheus is configured (CANARY_PROMETHEUS_URL)' };
    const { step, reference } = readWindows(c, now);
    try {
      // Latency is read from the end of the canary's warm-up when that falls in this step.
      const warmedAt = await this.warmedAt(c, source, now);
      const latency =
        warmedAt === null
          ? null
          : warmedAt === undefined || warmedAt <= step.from
            ? undefined
            : await Promise.all([
                source.versionStats(c.deployment, baselineVersion, warmedAt, step.to),
                source.versionStats(c.deployment, c.version, warmedAt, step.to),
              ]).then(([b, k]) => ({ baseline: b, canary: k }));
      const [baseline, canary, ref] = await Promise.all([
        source.versionStats(c.deployment, baselineVersion, step.from, step.to),
        source.versionStats(c.deployment, c.version, step.from, step.to),
        c.state.limits ? null : source.versionStats(c.deployment, baselineVersion, reference.from, reference.to),
      ]);
      // Business outcomes count from the canary's start: unlike errors they do not depend on the weight.
      const [bOut, cOut] = await Promise.all([
        this.deps.feedback.outcomeStats(c.deployment, baselineVersion, c.startedAt, now),
        this.deps.feedback.outcomeStats(c.deployment, c.version, c.startedAt, now),
      ]);
      const business = bOut.n + cOut.n > 0 ? { baseline: bOut, canary: cOut } : null;
      return { baseline, canary, reference: ref, business, latency, warmedAt };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /**
   * When the canary's warm-up (policy.warmup) ended: the first whole second at least its
   * duration after the canary started by which the canary had served its requests. null while
   * it goes on; undefined without a warm-up. Found once (a bisection over seconds), then kept.
   */
  private async warmedAt(c: CanaryRow, source: MetricsSource, now: number): Promise<number | null | undefined> {
    const w = c.policy.warmup;
    if (!w) return undefined;
    if (c.state.warmedAt != null) return c.state.warmedAt;
    const earliest = warmupEarliest(c.startedAt, w.durationMs);
    if (now < earliest) return null;
    if (w.requests === 0) return earliest;
    // Requests the canary served in the whole seconds before `toMs`.
    const served = async (toMs: number) =>
      (await source.versionStats(c.deployment, c.version, c.startedAt, toMs - 1000)).requests;
    if ((await served(earliest)) >= w.requests) return earliest;
    const last = Math.floor(now / 1000) * 1000;
    if (last <= earliest || (await served(last)) < w.requests) return null;
    let lo = earliest; // served(lo) < requests ≤ served(hi)
    let hi = last;
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if ((await served(mid)) >= w.requests) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /** Both versions' stats in the canary's current step (the gross-failure check); null when unreadable. */
  async grossStep(c: CanaryRow, now: number): Promise<{ canary: VersionStats; baseline: VersionStats } | null> {
    const source = this.source(c.policy);
    if (!source) return null;
    const { step } = readWindows(c, now);
    try {
      const [canary, baseline] = await Promise.all([
        source.versionStats(c.deployment, c.version, step.from, step.to),
        source.versionStats(c.deployment, c.baselineVersion, step.from, step.to),
      ]);
      return { canary, baseline };
    } catch {
      return null; // the interval analysis reports metrics errors
    }
  }

  /** A version's stats over [from, to] from the policy's source (steps "auto" sizing); null when unknown. */
  async span(policy: Policy, deployment: string, version: string, from: number, to: number) {
    return (await this.source(policy)?.versionStats(deployment, version, from, to)) ?? null;
  }
}

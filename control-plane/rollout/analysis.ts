import { CanaryError } from '../../common/errors.js';
import { type VersionStats, withoutHistogram } from '../../proxy/contract/stats.js';
import { costPer1kAnswers, type Pricing } from '../model/settings.js';
import type { CanaryRow } from '../state/types.js';
import { decide, grossFailure } from './decide.js';
import { type EvaluateResult, type RolloutDeps, RolloutPart } from './deps.js';
import type { Executor } from './executor.js';
import type { Measure } from './measure.js';
import { progressOf } from './progress-state.js';
import { deploymentOrThrow } from './queries.js';

/**
 * One analysis of a deployment's canary, as a straight line: measure → decide (pure) →
 * execute (rows, events, publish). Also the fast check between intervals (gross failure) and
 * the canaries proxies tripped on their own.
 */
export class Analysis extends RolloutPart {
  constructor(
    deps: RolloutDeps,
    private readonly measure: Measure,
    private readonly executor: Executor,
  ) {
    super(deps);
  }

  /**
   * The fast check, run at every tick between intervals (about once a stats flush): only the
   * absolute error-rate test, on both versions' counts (always-valid, so checking every second
   * costs no false alarms). True when the canary should be analysed now rather than at its
   * next interval.
   */
  async grossFailing(c: CanaryRow): Promise<boolean> {
    // Already judged critical and still running (paused, or autoRollback off): the regular
    // analysis keeps recording it; analysing again every second would only add rows.
    if (c.lastVerdict === 'critical') return false;
    const step = await this.measure.grossStep(c, this.now());
    return step !== null && grossFailure(progressOf(c, false), c.policy, step).status === 'fail';
  }

  /**
   * One analysis of a deployment's running canary: measure, decide, record, act.
   * With `leaseHolder`, the writes commit only while that holder still has the analysis
   * lease, so a replica that lost leadership mid-analysis changes nothing.
   */
  async evaluate(name: string, actor: string, leaseHolder?: string): Promise<EvaluateResult> {
    const d = await deploymentOrThrow(this.deps.store, name);
    const c = d.canary;
    if (!c) throw new CanaryError('NO_CANARY', `no canary is running for ${name}: nothing to evaluate`);
    const now = this.now();
    const timer = this.deps.telemetry?.analysisSeconds.startTimer();
    const stats = await this.measure.step(c, d.baselineVersion, now);
    const decision = decide(progressOf(c, d.status === 'paused'), c.policy, stats, now);
    const ok = !('error' in stats);
    const pricing = d.settings.pricing ?? null;
    const measured = {
      baseline: ok ? priced(withoutHistogram(stats.baseline), pricing) : null,
      canary: ok ? priced(withoutHistogram(stats.canary), pricing) : null,
    };
    const applied = await this.executor.apply(c, decision, measured, now, actor, leaseHolder);
    timer?.();
    const action = decision.actions.map((a) => a.type).join(',') || 'hold';
    if (applied) this.deps.telemetry?.decisions.labels(name, action).inc();
    if (decision.verdict === 'error') this.deps.telemetry?.analysisFailures.labels(name).inc();
    const log = { deployment: name, canary: c.version, weight: c.weight, verdict: decision.verdict, action, applied };
    this.deps.logger.info(log, 'analysis');
    return {
      deployment: name,
      canaryVersion: c.version,
      verdict: decision.verdict,
      reasons: decision.reasons,
      actions: decision.actions,
      rules: decision.rules,
      needs: decision.needs ?? null,
      weight: c.weight,
      ...measured,
      business: decision.business ?? null,
      applied,
    };
  }

  /** Canaries the proxies tripped on their own since the last call (Executor.trip for each). */
  async handleTrips(leaseHolder?: string): Promise<number> {
    if (!this.deps.trips) return 0;
    const trips = await this.deps.trips.takeTrips();
    for (const trip of trips) {
      this.deps.telemetry?.proxyTrips.labels(trip.deployment).inc();
      const outcomes = [...new Set(trip.outcomes)].join(', ');
      const reason = `a proxy took canary ${trip.version} off live traffic after ${trip.consecutiveFailures} consecutive failures (${outcomes})`;
      try {
        await this.executor.trip(trip, reason, leaseHolder);
      } catch (err) {
        this.deps.logger.warn({ err: (err as Error).message, trip }, 'could not record a proxy trip');
      }
    }
    return trips.length;
  }
}

/** A version's stats with the cost of 1,000 of its streamed answers, when the deployment has prices. */
function priced(s: VersionStats, pricing: Pricing | null): VersionStats {
  if (!pricing || !s.streams) return s;
  return { ...s, streams: { ...s.streams, costPer1kAnswers: costPer1kAnswers(pricing, s.streams) } };
}

import type { Role, Upstream } from '../contract/route-table.js';
import { isModelError, type Outcome } from '../contract/stats.js';
import type { CanaryTripper } from '../split/trips.js';
import type { StreamSummary } from '../stream/meter.js';
import type { StatsAccumulator } from '../telemetry/accumulator.js';
import type { GrpcCall } from '../telemetry/grpc-metrics.js';
import type { PredictionLog, PredictionRecord } from '../telemetry/prediction-log.js';
import type { ProxyRecorder } from '../telemetry/recorder.js';
import type { LatencyTracker } from '../upstream/hedge.js';

/**
 * What one upstream attempt was:
 * - routed: a draw of the split — counted in the stats the analysis reads;
 * - diverted: a canary draw sent to the baseline (tripped, or too many in flight);
 * - backup: the baseline answering for a canary (retry or hedge);
 * - forced: a tester's chosen variant;
 * - upgrade: a WebSocket (or other) upgrade, counted as one request of its variant.
 * Only routed attempts (and upgrades, which are routed too) reach the analysed stats: a retry,
 * hedge or diversion is not a routing draw, and counting it would tie the baseline's numbers
 * to the canary's behaviour.
 */
export type AttemptKind = 'routed' | 'diverted' | 'backup' | 'forced' | 'upgrade';

export interface Attempt {
  deployment: string;
  upstream: Upstream;
  role: Role;
  kind: AttemptKind;
  outcome: Outcome;
  latencyMs: number;
  /** A backup that retried a failed canary attempt: that canary's version. */
  retryOf?: string;
  /** A 413 the proxy raised itself while streaming the client's body: no model was involved. */
  ownBodyLimit?: boolean;
  /** The route table the request was served from (the trip reports it). */
  tableVersion?: number;
  /** A streamed answer: what was measured inside it. */
  stream?: StreamSummary;
  /** A gRPC call: its method and status code. */
  grpc?: GrpcCall;
  /** Routed by a sticky key: its group (proxy/contract/key-groups.ts). */
  keyGroup?: number;
}

/** The one place outcomes are recorded: Prometheus, the analysed stats, the hedge's latency, the trip, the prediction log. */
export class OutcomeRecorder {
  constructor(
    private readonly sinks: {
      metrics: ProxyRecorder;
      stats: StatsAccumulator;
      latency: LatencyTracker;
      trips: CanaryTripper;
      predictions?: PredictionLog;
    },
  ) {}

  attempt(a: Attempt): void {
    const { metrics, stats, latency, trips } = this.sinks;
    if (a.kind === 'forced') {
      metrics.forced.labels(a.deployment, a.upstream.version, a.role, a.outcome).inc();
      return;
    }
    if (!a.ownBodyLimit) {
      metrics.record(a.deployment, a.upstream.version, a.role, a.outcome, a.latencyMs);
      if (a.stream) metrics.stream(a.deployment, a.upstream.version, a.role, a.stream);
      if (a.grpc) metrics.grpc(a.deployment, a.upstream.version, a.role, a.grpc);
      // What the user waited for: a stream's first token, never its length (that is the answer's size).
      const waitedMs = a.stream?.ttftMs ?? a.latencyMs;
      if (a.kind === 'routed' || a.kind === 'upgrade') {
        stats.record(a.deployment, a.upstream.version, a.outcome, waitedMs, Date.now(), {
          stream: a.stream,
          grpcCode: a.grpc?.code,
          keyGroup: a.keyGroup,
        });
        if (a.kind === 'routed' && a.role === 'baseline' && a.outcome === 'success')
          latency.observe(a.deployment, waitedMs);
      }
    }
    // The fast trip watches every routed canary answer (a non-failure ends a run of failures).
    // A lost hedge extends a run too: eight canary requests in a row slower than the hedge delay
    // (3× the baseline's p99) is a canary that does not answer.
    // A canary failure its retry reproduced: evidence the fault is shared, which the analysis
    // reads where no baseline serves beside the canary (at 100%).
    if (a.kind === 'backup' && a.retryOf && isModelError(a.outcome))
      stats.retryFailed(a.deployment, a.retryOf, Date.now());
    // The baseline's answers, its own and those it gave for the canary (a retry that fails too
    // says the fault is shared, at any weight), are the yardstick a canary's run is read against.
    if ((a.kind === 'routed' || a.kind === 'backup') && a.role === 'baseline' && a.outcome !== 'aborted')
      trips.observeBaseline(a.deployment, isModelError(a.outcome));
    if (a.kind === 'routed' && a.role === 'canary' && a.outcome !== 'aborted')
      trips.observe(
        a.deployment,
        a.upstream.version,
        a.outcome,
        isModelError(a.outcome) || a.outcome === 'hedge_lost',
        a.tableVersion ?? 0,
      );
  }

  /**
   * A routing draw, as it is decided: what the split did, whatever the answer turns out to be
   * (the analysis checks the canary's share of these against its weight).
   */
  routed(deployment: string, version: string): void {
    this.sinks.stats.routed(deployment, version, Date.now());
  }

  /** The answer a user got (prediction log: request id, version, input hash, outcome). */
  answered(p: PredictionRecord): void {
    this.sinks.predictions?.record(p);
  }

  get logsPredictions(): boolean {
    return this.sinks.predictions !== undefined;
  }
}

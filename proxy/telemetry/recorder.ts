import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Role, RouteTable } from '../contract/route-table.js';
import type { Outcome } from '../contract/stats.js';
import type { StreamSummary } from '../stream/meter.js';
import { type CounterSeries, FastCounter, FastHistogram, type HistogramSeries } from './fast-metrics.js';
import { type GrpcCall, GrpcMetrics } from './grpc-metrics.js';
import { StreamMetrics } from './stream-metrics.js';

const OUTCOMES: Outcome[] = [
  'success',
  'client_error',
  'server_error',
  'timeout',
  'connection_error',
  'aborted',
  'hedge_lost',
];
/** Latency buckets in seconds, dense where model servers usually answer (5 ms – 1 s). */
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10];

interface SeriesChildren {
  byOutcome: Record<Outcome, CounterSeries>;
  latency: HistogramSeries;
}

/**
 * Every Prometheus metric the proxy exposes, on an injected registry. The series every request
 * updates (requests, duration, gRPC calls) are fast-metrics.ts cells, found once per
 * (deployment, version, role) and kept: prom-client's `.labels()` and even its children check and
 * hash the labels on every update (DESIGN.md §4). The rest are prom-client's own.
 */
export class ProxyRecorder {
  readonly registry: Registry;
  private readonly requests: FastCounter<'deployment' | 'version' | 'role' | 'outcome'>;
  private readonly duration: FastHistogram<'deployment' | 'version' | 'role'>;
  private readonly weight: Gauge<'deployment'>;
  private readonly tableVersion: Gauge;
  private readonly routeSourceUp: Gauge;
  readonly statsFlushFailures: Counter;
  readonly canaryRetries: Counter<'deployment'>;
  readonly canaryHedges: Counter<'deployment'>;
  readonly canaryDiverted: Counter<'deployment' | 'reason'>;
  readonly canaryTrips: Counter<'deployment'>;
  readonly sharedFaults: Counter<'deployment'>;
  readonly bufferBudgetExceeded: Counter;
  readonly forced: Counter<'deployment' | 'version' | 'role' | 'outcome'>;
  readonly shadowRequests: Counter<'deployment' | 'version' | 'result'>;
  readonly shadowNoise: Counter<'deployment' | 'version' | 'result'>;
  readonly predictionsDropped: Counter;
  readonly predictionsWritten: Counter;
  readonly connectionsRefused: Counter;
  /** Set by the proxy when a prediction log runs: reports its queue length at scrape time. */
  predictionQueue: () => number = () => 0;
  /** By deployment, role and version (the route table's own strings): found without building a key. */
  private readonly children = new Map<string, Record<Role, Map<string, SeriesChildren>>>();
  private readonly streams: StreamMetrics;
  private readonly grpcCalls: GrpcMetrics;

  constructor(registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
    this.registry = registry;
    if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'canary_proxy_' });
    // Updated by every request: series found once, added to without prom-client's per-call label checks.
    this.requests = new FastCounter(
      'canary_proxy_requests_total',
      'Requests forwarded, by model version, role and outcome',
      ['deployment', 'version', 'role', 'outcome'],
      registry,
    );
    this.duration = new FastHistogram(
      'canary_proxy_request_duration_seconds',
      'Upstream latency seen at the proxy',
      ['deployment', 'version', 'role'],
      LATENCY_BUCKETS_S,
      registry,
    );
    this.weight = new Gauge({
      name: 'canary_proxy_canary_weight_percent',
      help: 'Current canary weight (0-100)',
      labelNames: ['deployment'],
      registers: [registry],
    });
    this.tableVersion = new Gauge({
      name: 'canary_proxy_route_table_version',
      help: 'Version of the route table in use',
      registers: [registry],
    });
    this.routeSourceUp = new Gauge({
      name: 'canary_proxy_route_source_connected',
      help: '1 when the route source (Redis) is reachable, 0 while serving the last known table',
      registers: [registry],
    });
    this.statsFlushFailures = new Counter({
      name: 'canary_proxy_stats_flush_failures_total',
      help: 'Windowed-stats flushes that failed (retried on the next flush)',
      registers: [registry],
    });
    this.predictionsDropped = new Counter({
      name: 'canary_proxy_prediction_log_dropped_total',
      help: 'Prediction-log records dropped because the queue was full',
      registers: [registry],
    });
    this.predictionsWritten = new Counter({
      name: 'canary_proxy_prediction_log_written_total',
      help: 'Prediction-log records written to PostgreSQL',
      registers: [registry],
    });
    const self = this;
    new Gauge({
      name: 'canary_proxy_prediction_log_queue',
      help: 'Prediction-log records waiting to be written',
      registers: [registry],
      collect() {
        this.set(self.predictionQueue());
      },
    });
    this.connectionsRefused = new Counter({
      name: 'canary_proxy_connections_refused_total',
      help: 'Client connections answered 503 because CANARY_MAX_CONNECTIONS was reached',
      registers: [registry],
    });
    this.canaryRetries = new Counter({
      name: 'canary_proxy_canary_retries_total',
      help: 'Failed canary requests retried on the baseline',
      labelNames: ['deployment'],
      registers: [registry],
    });
    this.canaryHedges = new Counter({
      name: 'canary_proxy_canary_hedges_total',
      help: 'Slow canary requests also sent to the baseline (hedged)',
      labelNames: ['deployment'],
      registers: [registry],
    });
    this.canaryDiverted = new Counter({
      name: 'canary_proxy_canary_diverted_total',
      help: 'Requests the split gave the canary but the proxy sent to the baseline (reason: tripped, in_flight_cap)',
      labelNames: ['deployment', 'reason'],
      registers: [registry],
    });
    this.forced = new Counter({
      name: 'canary_proxy_forced_requests_total',
      help: 'Requests a tester sent to a chosen variant with x-canary-force (never analysed)',
      labelNames: ['deployment', 'version', 'role', 'outcome'],
      registers: [registry],
    });
    this.shadowRequests = new Counter({
      name: 'canary_proxy_shadow_requests_total',
      help: "Shadow requests to a canary in its shadow phase, by result: agreed, disagreed (with the baseline's answer), error, timeout, dropped (not sent: over the concurrency cap or body budget), uncompared (no baseline answer to compare)",
      labelNames: ['deployment', 'version', 'result'],
      registers: [registry],
    });
    this.shadowNoise = new Counter({
      name: 'canary_proxy_shadow_noise_total',
      help: 'Noise floor: requests answered twice by the baseline and compared, by result (agreed, disagreed)',
      labelNames: ['deployment', 'version', 'result'],
      registers: [registry],
    });
    this.bufferBudgetExceeded = new Counter({
      name: 'canary_proxy_buffer_budget_exceeded_total',
      help: 'Canary requests not held for retry or hedge because CANARY_BUFFER_BUDGET_BYTES was reached',
      registers: [registry],
    });
    this.streams = new StreamMetrics(registry);
    this.grpcCalls = new GrpcMetrics(registry);
    this.sharedFaults = new Counter({
      name: 'canary_proxy_shared_faults_total',
      help: 'Canary runs of failures not tripped because the baseline was failing too over the same seconds (a shared fault)',
      labelNames: ['deployment'],
      registers: [registry],
    });
    this.canaryTrips = new Counter({
      name: 'canary_proxy_canary_trips_total',
      help: 'Canaries this proxy took off live traffic on its own (fast trip)',
      labelNames: ['deployment'],
      registers: [registry],
    });
  }

  private series(deployment: string, version: string, role: Role): SeriesChildren {
    let byRole = this.children.get(deployment);
    if (!byRole) {
      byRole = { baseline: new Map(), canary: new Map() };
      this.children.set(deployment, byRole);
    }
    let s = byRole[role].get(version);
    if (!s) {
      const byOutcome = {} as SeriesChildren['byOutcome'];
      for (const o of OUTCOMES) byOutcome[o] = this.requests.series({ deployment, version, role, outcome: o });
      s = { byOutcome, latency: this.duration.series({ deployment, version, role }) };
      byRole[role].set(version, s);
    }
    return s;
  }

  record(deployment: string, version: string, role: Role, outcome: Outcome, latencyMs: number): void {
    const s = this.series(deployment, version, role);
    s.byOutcome[outcome].inc();
    if (outcome !== 'aborted') s.latency.observe(latencyMs / 1000);
  }

  /** A streamed answer's TTFT, TPOT, tokens and end. */
  stream(deployment: string, version: string, role: Role, s: StreamSummary): void {
    this.streams.observe(deployment, version, role, s);
  }

  /** A gRPC call's method and status code. */
  grpc(deployment: string, version: string, role: Role, call: GrpcCall): void {
    this.grpcCalls.observe(deployment, version, role, call);
  }

  onTable(table: RouteTable): void {
    this.tableVersion.set(table.version);
    this.weight.reset();
    for (const d of Object.values(table.deployments)) {
      this.weight.labels(d.name).set(d.canary?.weight ?? 0);
      // Series exist at 0 before the first request, so Prometheus's increase() sees them start.
      this.series(d.name, d.baseline.version, 'baseline');
      if (d.canary) this.series(d.name, d.canary.version, 'canary');
      this.sharedFaults.labels(d.name).inc(0); // alerted on (CanarySharedFault)
    }
  }

  setRouteSourceConnected(up: boolean): void {
    this.routeSourceUp.set(up ? 1 : 0);
  }
}

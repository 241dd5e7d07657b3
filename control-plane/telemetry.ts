import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ControlStore } from './state/store.js';

const VERDICTS = ['healthy', 'degraded', 'critical', 'inconclusive', 'error'] as const;
/** The `action` label's values (an analysis that acted on nothing is `hold`). */
const ACTIONS = ['advance', 'promote', 'rollback', 'record_failure', 'hold'] as const;

/**
 * The control plane's own Prometheus metrics, on an injected registry, served at /metrics
 * (behind the token when one is set). Per deployment: the canary's weight and current verdict
 * (read from the store at scrape time, so every replica reports the same); decisions by type,
 * analysis duration and failures, leadership, proxy trips and alert deliveries by outcome.
 */
export class ControlPlaneMetrics {
  readonly registry: Registry;
  readonly decisions: Counter<'deployment' | 'action'>;
  readonly analysisSeconds: Histogram;
  readonly analysisFailures: Counter<'deployment'>;
  readonly leader: Gauge;
  readonly alertDeliveries: Counter<'outcome'>;
  readonly proxyTrips: Counter<'deployment'>;

  constructor(store: ControlStore, registry = new Registry()) {
    this.registry = registry;
    collectDefaultMetrics({ register: registry, prefix: 'canary_cp_' });
    // Every series an alert reads exists at 0 from the moment its deployment does: increase()
    // sees a counter's first step only from a sample before it, so the first rollback of a
    // deployment would otherwise never alert (each counter lists them itself: a scrape
    // collects the metrics concurrently).
    const deployments = async () => (await store.listDeployments().catch(() => [])).map((d) => d.name);
    const decisions = new Counter({
      name: 'canary_cp_decisions_total',
      help: 'Analyses by what they did: advance, promote, rollback, record_failure or hold',
      labelNames: ['deployment', 'action'],
      registers: [registry],
      async collect() {
        for (const d of await deployments()) for (const action of ACTIONS) decisions.labels(d, action).inc(0);
      },
    });
    this.decisions = decisions;
    this.analysisSeconds = new Histogram({
      name: 'canary_cp_analysis_duration_seconds',
      help: 'Time one analysis takes (measure, decide, record)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    const failures = new Counter({
      name: 'canary_cp_analysis_failures_total',
      help: 'Analyses that could not judge (error verdicts: metrics unavailable) or failed to run',
      labelNames: ['deployment'],
      registers: [registry],
      async collect() {
        for (const d of await deployments()) failures.labels(d).inc(0);
      },
    });
    this.analysisFailures = failures;
    this.leader = new Gauge({
      name: 'canary_cp_leader',
      help: '1 while this replica holds the analysis lease',
      registers: [registry],
    });
    this.alertDeliveries = new Counter({
      name: 'canary_cp_alert_deliveries_total',
      help: 'Alert delivery attempts by outcome: delivered, retrying, failed',
      labelNames: ['outcome'],
      registers: [registry],
    });
    const trips = new Counter({
      name: 'canary_cp_proxy_trips_total',
      help: 'Canaries a proxy took off live traffic on its own',
      labelNames: ['deployment'],
      registers: [registry],
      async collect() {
        for (const d of await deployments()) trips.labels(d).inc(0);
      },
    });
    this.proxyTrips = trips;
    new Gauge({
      name: 'canary_cp_canary_weight_percent',
      help: 'Weight of the running canary per deployment (0 when none)',
      labelNames: ['deployment'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const d of await store.listDeployments().catch(() => [])) this.labels(d.name).set(d.canary?.weight ?? 0);
      },
    });
    new Gauge({
      name: 'canary_cp_verdict',
      help: "The running canary's current verdict (1 for the current one)",
      labelNames: ['deployment', 'verdict'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const d of await store.listDeployments().catch(() => [])) {
          if (!d.canary) continue;
          for (const v of VERDICTS) this.labels(d.name, v).set(d.canary.lastVerdict === v ? 1 : 0);
        }
      },
    });
  }
}

import type { Trip } from '../contract/trip.js';

/**
 * The proxy's local fast trip: a canary failing every request is taken off live traffic by
 * the proxy itself, within about a second, instead of waiting for the control plane's next
 * analysis. It trips on a run of TRIP_RUN consecutive model failures (errors, timeouts,
 * refused connections, lost hedges) of one canary version. Under a healthy canary with a 5%
 * error rate such a run starts with probability 0.05^8 ≈ 4·10⁻¹¹ per request — about one
 * false trip in 25 billion requests. A trip is reported to the control plane, which records
 * `proxy_tripped` and rolls back through its normal path; the proxy stays tripped for that
 * canary until a newer route table arrives.
 */
export const TRIP_RUN = 8;
/**
 * A run is a shared fault, not the canary's, unless the baseline was shown healthy over the
 * run's own span: its answers since the run's first failure (at least SHARED_MIN_REQUESTS of
 * them, reaching back up to SHARED_LOOKBACK_MS) failed less than SHARED_FAULT_SHARE. A baseline
 * failing that often too is an outage of something both versions use, or a burst: the trip
 * holds and the analysis, which compares both over the same steps, judges. The baseline's
 * answers include those it gave for the canary (retries, hedges), so at 100% too a run whose
 * retries fail as well is shared. Ten answers with none failing at a burst's 60% happens once
 * in 10,000 runs; a canary failing alone beside a baseline at 1% errors is tripped. With
 * fewer answers than that, a run is tripped only while none of them failed.
 */
export const SHARED_FAULT_SHARE = 0.1;
const SHARED_MIN_REQUESTS = 10;
const SHARED_LOOKBACK_MS = 2000;
/** The baseline answers remembered per deployment (a ring): enough for a run's span at any rate. */
const RECENT = 256;

/** A canary run of failures not tripped because the baseline was failing too. */
export interface SharedFault {
  deployment: string;
  version: string;
  baselineRequests: number;
  baselineFailures: number;
}

/** A deployment's latest baseline answers, newest at `next - 1`. */
interface Recent {
  at: Float64Array;
  failed: Uint8Array;
  next: number;
  size: number;
}

/** A run of canary failures: their outcomes and when it began. */
interface Run {
  outcomes: string[];
  since: number;
}

export class CanaryTripper {
  private readonly runs = new Map<string, Run>();
  private readonly tripped = new Map<string, Trip>();
  private readonly baseline = new Map<string, Recent>();

  constructor(
    private readonly onTrip: (trip: Trip) => void,
    private readonly run = TRIP_RUN,
    private readonly onSharedFault: (f: SharedFault) => void = () => {},
  ) {}

  /** One baseline answer (routed, or for the canary): the yardstick a canary's run is read against. */
  observeBaseline(deployment: string, failed: boolean, nowMs = Date.now()): void {
    let r = this.baseline.get(deployment);
    if (!r) {
      r = { at: new Float64Array(RECENT), failed: new Uint8Array(RECENT), next: 0, size: 0 };
      this.baseline.set(deployment, r);
    }
    r.at[r.next] = nowMs;
    r.failed[r.next] = failed ? 1 : 0;
    r.next = (r.next + 1) % RECENT;
    r.size = Math.min(RECENT, r.size + 1);
  }

  /** The baseline's answers and failures over a run that began at `since`. */
  private baselineOver(deployment: string, since: number, nowMs: number): { n: number; failed: number } {
    const r = this.baseline.get(deployment);
    let n = 0,
      failed = 0;
    for (let k = 1; r && k <= r.size; k++) {
      const i = (r.next - k + RECENT) % RECENT;
      const old = r.at[i] < since;
      if ((old && n >= SHARED_MIN_REQUESTS) || r.at[i] < nowMs - SHARED_LOOKBACK_MS) break;
      n++;
      failed += r.failed[i];
    }
    return { n, failed };
  }

  private key(deployment: string, version: string) {
    return `${deployment}\u0000${version}`;
  }

  isTripped(deployment: string, version: string): boolean {
    return this.tripped.size > 0 && this.tripped.has(this.key(deployment, version));
  }

  /** One finished canary request: a model failure extends the run, anything else ends it. */
  observe(
    deployment: string,
    version: string,
    outcome: string,
    failed: boolean,
    tableVersion: number,
    nowMs = Date.now(),
  ): void {
    const k = this.key(deployment, version);
    if (!failed) {
      if (this.runs.has(k)) this.runs.delete(k);
      return;
    }
    let run = this.runs.get(k);
    if (!run) {
      run = { outcomes: [], since: nowMs };
      this.runs.set(k, run);
    }
    run.outcomes.push(outcome);
    if (run.outcomes.length >= this.run && !this.tripped.has(k)) {
      const b = this.baselineOver(deployment, run.since, nowMs);
      if (b.n >= SHARED_MIN_REQUESTS && b.failed >= SHARED_FAULT_SHARE * b.n) {
        this.runs.delete(k);
        this.onSharedFault({ deployment, version, baselineRequests: b.n, baselineFailures: b.failed });
        return;
      }
      // Too few baseline answers to tell, some of them failed: the run goes on, and each
      // further failure asks again (retries keep adding answers).
      if (b.n < SHARED_MIN_REQUESTS && b.failed > 0) return;
      const trip: Trip = {
        deployment,
        version,
        at: nowMs,
        tableVersion,
        consecutiveFailures: run.outcomes.length,
        outcomes: [...run.outcomes],
      };
      this.tripped.set(k, trip);
      this.onTrip(trip);
    }
  }

  /** A newer route table from the control plane clears the trips made under older ones. */
  onTable(tableVersion: number): void {
    for (const [k, t] of this.tripped) if (tableVersion > t.tableVersion) this.tripped.delete(k);
    this.runs.clear();
  }
}

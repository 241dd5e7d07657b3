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
 * A run is a shared fault, not the canary's, when the baseline failed at least this share of
 * its requests over the same seconds (the current and the previous one, at least
 * SHARED_MIN_REQUESTS of them): an outage of something both versions use. The trip holds.
 */
export const SHARED_FAULT_SHARE = 0.5;
const SHARED_MIN_REQUESTS = 5;

/** A canary run of failures not tripped because the baseline was failing too. */
export interface SharedFault {
  deployment: string;
  version: string;
  baselineRequests: number;
  baselineFailures: number;
}

/** The baseline's outcomes per second, the current and the previous one. */
interface Recent {
  second: number;
  n: number;
  failed: number;
  prevN: number;
  prevFailed: number;
}

export class CanaryTripper {
  private readonly runs = new Map<string, string[]>();
  private readonly tripped = new Map<string, Trip>();
  private readonly baseline = new Map<string, Recent>();

  constructor(
    private readonly onTrip: (trip: Trip) => void,
    private readonly run = TRIP_RUN,
    private readonly onSharedFault: (f: SharedFault) => void = () => {},
  ) {}

  /** One routed baseline answer: the yardstick a canary's run of failures is read against. */
  observeBaseline(deployment: string, failed: boolean, nowMs = Date.now()): void {
    const second = Math.floor(nowMs / 1000);
    let r = this.baseline.get(deployment);
    if (!r) {
      r = { second, n: 0, failed: 0, prevN: 0, prevFailed: 0 };
      this.baseline.set(deployment, r);
    }
    if (r.second !== second) {
      const adjacent = second === r.second + 1;
      r.prevN = adjacent ? r.n : 0;
      r.prevFailed = adjacent ? r.failed : 0;
      r.second = second;
      r.n = 0;
      r.failed = 0;
    }
    r.n++;
    if (failed) r.failed++;
  }

  /** The baseline's requests and failures over the current and previous second. */
  private baselineNow(deployment: string, nowMs: number): { n: number; failed: number } {
    const r = this.baseline.get(deployment);
    const second = Math.floor(nowMs / 1000);
    if (!r || r.second < second - 1) return { n: 0, failed: 0 };
    if (r.second === second) return { n: r.n + r.prevN, failed: r.failed + r.prevFailed };
    return { n: r.n, failed: r.failed }; // r is the previous second
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
      run = [];
      this.runs.set(k, run);
    }
    run.push(outcome);
    if (run.length >= this.run && !this.tripped.has(k)) {
      const b = this.baselineNow(deployment, nowMs);
      if (b.n >= SHARED_MIN_REQUESTS && b.failed >= SHARED_FAULT_SHARE * b.n) {
        // Both versions failing over the same seconds: a shared fault. Hold, say so, start over.
        this.runs.delete(k);
        this.onSharedFault({ deployment, version, baselineRequests: b.n, baselineFailures: b.failed });
        return;
      }
      const trip: Trip = {
        deployment,
        version,
        at: Date.now(),
        tableVersion,
        consecutiveFailures: run.length,
        outcomes: [...run],
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

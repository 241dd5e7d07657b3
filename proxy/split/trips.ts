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

export class CanaryTripper {
  private readonly runs = new Map<string, string[]>();
  private readonly tripped = new Map<string, Trip>();

  constructor(
    private readonly onTrip: (trip: Trip) => void,
    private readonly run = TRIP_RUN,
  ) {}

  private key(deployment: string, version: string) {
    return `${deployment}\u0000${version}`;
  }

  isTripped(deployment: string, version: string): boolean {
    return this.tripped.size > 0 && this.tripped.has(this.key(deployment, version));
  }

  /** One finished canary request: a model failure extends the run, anything else ends it. */
  observe(deployment: string, version: string, outcome: string, failed: boolean, tableVersion: number): void {
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

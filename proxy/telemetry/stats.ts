import { addValue, mergeInto, quantile, type Buckets } from './histogram.js';
import type { Trip } from '../split/trips.js';

/**
 * The windowed-stats contract between proxies and the control plane. Proxies add
 * per-second cells; readers merge the cells of one (deployment, version) over [from, to].
 */
export type Outcome = 'success' | 'client_error' | 'server_error' | 'timeout' | 'connection_error' | 'aborted';

/** 5xx, timeouts and connection failures count against the model; 4xx and client aborts do not. */
export function isModelError(outcome: Outcome): boolean {
  return outcome === 'server_error' || outcome === 'timeout' || outcome === 'connection_error';
}

/** One second of one version's traffic, as accumulated by one proxy. */
export interface StatsCell {
  deployment: string;
  version: string;
  epochSecond: number;
  requests: number;
  modelErrors: number;
  clientErrors: number;
  latency: Buckets;
}

/** Merged stats of one version over a time range. Latencies in milliseconds. */
export interface VersionStats {
  deployment: string;
  version: string;
  from: number;
  to: number;
  requests: number;
  modelErrors: number;
  clientErrors: number;
  /** modelErrors / requests, or 0 with no requests. */
  errorRate: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /**
   * The merged latency histogram, for the analysis's latency tests (how many requests were
   * slower than a limit). In memory only: views and stored analyses leave it out.
   */
  histogram?: Buckets;
}

/** The stats without their histogram, as the API shows and stores them. */
export function withoutHistogram<T extends VersionStats | null | undefined>(s: T): T {
  if (!s || s.histogram === undefined) return s;
  const { histogram: _h, ...rest } = s;
  return rest as T;
}

/**
 * Where proxies report to the control plane: their windowed stats cells (read back merged by
 * the analysis), and the canaries they tripped (taken by the control plane's loop).
 */
export interface StatsStore {
  /** Adds cells (merging with other writers). One round-trip per call, never per request. */
  write(cells: StatsCell[]): Promise<void>;
  /** Merged stats of a version over [fromMs, toMs] (whole seconds, inclusive). */
  read(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats>;
  /** A proxy took a canary off live traffic (proxy/split/trips.ts). */
  reportTrip(trip: Trip): Promise<void>;
  /** Trips reported since the last call; each is returned once. */
  takeTrips(): Promise<Trip[]>;
  close?(): Promise<void>;
}

export function summarize(deployment: string, version: string, from: number, to: number,
  requests: number, modelErrors: number, clientErrors: number, latency: Buckets): VersionStats {
  return {
    deployment, version, from, to, requests, modelErrors, clientErrors,
    errorRate: requests > 0 ? modelErrors / requests : 0,
    p50: quantile(latency, 0.5),
    p95: quantile(latency, 0.95),
    p99: quantile(latency, 0.99),
    histogram: latency,
  };
}

const cellKey = (c: StatsCell) => `${c.deployment}\u0000${c.version}\u0000${c.epochSecond}`;

/** Adds `cells` into a map of cells keyed by (deployment, version, second); never aliases an input. */
export function mergeCells(into: Map<string, StatsCell>, cells: StatsCell[]): void {
  for (const c of cells) {
    const key = cellKey(c);
    const cur = into.get(key);
    if (!cur) {
      into.set(key, { ...c, latency: new Map(c.latency) });
      continue;
    }
    cur.requests += c.requests;
    cur.modelErrors += c.modelErrors;
    cur.clientErrors += c.clientErrors;
    mergeInto(cur.latency, c.latency);
  }
}

/**
 * Accumulates outcomes in memory on the hot path (a Map lookup and a few additions) and
 * hands them over in one batch per flush.
 */
export class StatsAccumulator {
  private cells = new Map<string, StatsCell>();

  record(deployment: string, version: string, outcome: Outcome, latencyMs: number, nowMs: number): void {
    if (outcome === 'aborted') return; // the client left: says nothing about the model
    const epochSecond = Math.floor(nowMs / 1000);
    const key = `${deployment}\u0000${version}\u0000${epochSecond}`; // = cellKey, without building a cell first
    let cell = this.cells.get(key);
    if (!cell) {
      cell = { deployment, version, epochSecond, requests: 0, modelErrors: 0, clientErrors: 0, latency: new Map() };
      this.cells.set(key, cell);
    }
    cell.requests++;
    if (isModelError(outcome)) cell.modelErrors++;
    else if (outcome === 'client_error') cell.clientErrors++;
    addValue(cell.latency, latencyMs);
  }

  /** Takes everything recorded so far; the accumulator starts empty again. */
  drain(): StatsCell[] {
    const out = [...this.cells.values()];
    this.cells = new Map();
    return out;
  }

  /** Puts cells back after a failed write so the next flush retries them. */
  restore(cells: StatsCell[]): void {
    mergeCells(this.cells, cells);
  }

  get pending(): number {
    return this.cells.size;
  }
}

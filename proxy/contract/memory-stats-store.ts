import { addGrpcCodes, noGrpcCodes } from './grpc-codes.js';
import { type Buckets, mergeInto } from './histogram.js';
import { addKeyGroups, noKeyGroups } from './key-groups.js';
import {
  addAgreement,
  type DisagreementExample,
  MAX_EXAMPLES,
  mergeCells,
  noAgreement,
  type StatsCell,
  type StatsStore,
  summarize,
  type VersionStats,
} from './stats.js';
import { addStreams, noStreams } from './stream-stats.js';
import type { Trip } from './trip.js';

/** In-process stats store for the embedded single-process mode and unit tests. */
export class MemoryStatsStore implements StatsStore {
  private cells = new Map<string, StatsCell>();
  private trips: Trip[] = [];
  private kept = new Map<string, DisagreementExample[]>();
  /** Ids of applied flushes (with when), kept as long as the cells. */
  private flushes = new Map<string, number>();
  constructor(private readonly retentionMs = 2 * 3_600_000) {}

  async write(cells: StatsCell[], flushId?: string): Promise<void> {
    const now = Date.now();
    if (flushId !== undefined) {
      if (this.flushes.has(flushId)) return; // applied already: exactly once, as in Redis
      this.flushes.set(flushId, now);
    }
    mergeCells(this.cells, cells);
    this.prune(now);
  }

  async read(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats> {
    const from = Math.floor(fromMs / 1000);
    const to = Math.floor(toMs / 1000);
    let requests = 0,
      modelErrors = 0,
      clientErrors = 0,
      retryFailed = 0,
      routed = 0;
    const latency: Buckets = new Map();
    const agreement = noAgreement();
    const streams = noStreams();
    const grpc = noGrpcCodes();
    const keyed = noKeyGroups();
    for (const c of this.cells.values()) {
      if (c.deployment !== deployment || c.version !== version || c.epochSecond < from || c.epochSecond > to) continue;
      requests += c.requests;
      modelErrors += c.modelErrors;
      clientErrors += c.clientErrors;
      retryFailed += c.retryFailed ?? 0;
      routed += c.routed ?? 0;
      mergeInto(latency, c.latency);
      if (c.agreement) addAgreement(agreement, c.agreement);
      if (c.stream) addStreams(streams, c.stream);
      if (c.grpc) addGrpcCodes(grpc, c.grpc);
      if (c.keyed) addKeyGroups(keyed, c.keyed);
    }
    return summarize(deployment, version, fromMs, toMs, requests, modelErrors, clientErrors, latency, {
      agreement,
      streams,
      grpc,
      retryFailed,
      keyed,
      routed,
    });
  }

  async reportTrip(trip: Trip): Promise<void> {
    this.trips.push(trip);
  }

  async takeTrips(): Promise<Trip[]> {
    const out = this.trips;
    this.trips = [];
    return out;
  }

  async addExamples(deployment: string, version: string, examples: DisagreementExample[]): Promise<void> {
    const key = `${deployment}\u0000${version}`;
    this.kept.set(key, [...[...examples].reverse(), ...(this.kept.get(key) ?? [])].slice(0, MAX_EXAMPLES));
  }

  async examples(deployment: string, version: string): Promise<DisagreementExample[]> {
    return this.kept.get(`${deployment}\u0000${version}`) ?? [];
  }

  private prune(nowMs: number): void {
    const oldest = Math.floor((nowMs - this.retentionMs) / 1000);
    for (const [k, c] of this.cells) if (c.epochSecond < oldest) this.cells.delete(k);
    for (const [id, at] of this.flushes) if (at < nowMs - this.retentionMs) this.flushes.delete(id);
  }
}

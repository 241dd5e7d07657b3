import { noGrpcCodes } from '../contract/grpc-codes.js';
import { addValue } from '../contract/histogram.js';
import { countKeyed, noKeyGroups } from '../contract/key-groups.js';
import {
  type AgreementField,
  type DisagreementExample,
  isModelError,
  MAX_EXAMPLES,
  noAgreement,
  type Outcome,
  type StatsCell,
} from '../contract/stats.js';
import { type MeasuredStream, noStreams, recordStream } from '../contract/stream-stats.js';

/**
 * Accumulates outcomes in memory on the hot path (a Map lookup and a few additions) and
 * hands them over in one batch per flush.
 */
export class StatsAccumulator {
  private cells = new Map<string, StatsCell>();
  /**
   * Each version's newest cell, by deployment then version: the route table's own strings, so
   * the hot path finds the cell of the current second without building a key.
   */
  private newest = new Map<string, Map<string, StatsCell>>();
  private pendingExamples = new Map<string, { deployment: string; version: string; examples: DisagreementExample[] }>();

  /**
   * One answer. `latencyMs` is what the user waited for the answer to begin: the whole answer,
   * or a stream's time to first token (`stream` has the rest of what was measured in it).
   */
  record(
    deployment: string,
    version: string,
    outcome: Outcome,
    latencyMs: number,
    nowMs: number,
    { stream, grpcCode, keyGroup }: { stream?: MeasuredStream; grpcCode?: number; keyGroup?: number } = {},
  ): void {
    if (outcome === 'aborted' && !stream) return; // the client left: says nothing about the model
    const cell = this.cell(deployment, version, Math.floor(nowMs / 1000));
    if (stream) {
      cell.stream ??= noStreams();
      recordStream(cell.stream, stream);
    }
    if (outcome === 'aborted') return;
    if (grpcCode !== undefined) {
      cell.grpc ??= noGrpcCodes();
      cell.grpc[grpcCode]++;
    }
    cell.requests++;
    if (keyGroup !== undefined) {
      cell.keyed ??= noKeyGroups();
      countKeyed(cell.keyed, keyGroup, isModelError(outcome));
    }
    if (isModelError(outcome)) cell.modelErrors++;
    else if (outcome === 'client_error') cell.clientErrors++;
    addValue(cell.latency, latencyMs);
  }

  /** A routing draw of `version`, counted as it is decided (the sample-ratio check reads these). */
  routed(deployment: string, version: string, nowMs: number): void {
    const cell = this.cell(deployment, version, Math.floor(nowMs / 1000));
    cell.routed = (cell.routed ?? 0) + 1;
  }

  /** A model error of `version` whose retry on the baseline failed too (a shared fault). */
  retryFailed(deployment: string, version: string, nowMs: number): void {
    const cell = this.cell(deployment, version, Math.floor(nowMs / 1000));
    cell.retryFailed = (cell.retryFailed ?? 0) + 1;
  }

  private cell(deployment: string, version: string, epochSecond: number): StatsCell {
    let byVersion = this.newest.get(deployment);
    const last = byVersion?.get(version);
    if (last !== undefined && last.epochSecond === epochSecond) return last;
    const cell = this.cellByKey(deployment, version, epochSecond);
    if (!byVersion) {
      byVersion = new Map();
      this.newest.set(deployment, byVersion);
    }
    byVersion.set(version, cell);
    return cell;
  }

  private cellByKey(deployment: string, version: string, epochSecond: number): StatsCell {
    const key = `${deployment}\u0000${version}\u0000${epochSecond}`; // = cellKey, without building a cell first
    let cell = this.cells.get(key);
    if (!cell) {
      cell = { deployment, version, epochSecond, requests: 0, modelErrors: 0, clientErrors: 0, latency: new Map() };
      this.cells.set(key, cell);
    }
    return cell;
  }

  /** Counts one shadow event (proxy/shadow/mirror.ts) for a version. */
  count(deployment: string, version: string, field: AgreementField, nowMs: number): void {
    const cell = this.cell(deployment, version, Math.floor(nowMs / 1000));
    cell.agreement ??= noAgreement();
    cell.agreement[field]++;
  }

  /** Keeps a disagreement example until the next flush (at most MAX_EXAMPLES per version: older ones would be trimmed anyway). */
  example(deployment: string, version: string, ex: DisagreementExample): void {
    const key = `${deployment}\u0000${version}`;
    let e = this.pendingExamples.get(key);
    if (!e) {
      e = { deployment, version, examples: [] };
      this.pendingExamples.set(key, e);
    }
    e.examples.push(ex);
    if (e.examples.length > MAX_EXAMPLES) e.examples.shift();
  }

  /** Takes the examples kept since the last call, oldest first per version. */
  drainExamples(): { deployment: string; version: string; examples: DisagreementExample[] }[] {
    const out = [...this.pendingExamples.values()];
    this.pendingExamples = new Map();
    return out;
  }

  /** Takes everything recorded so far; the accumulator starts empty again. */
  drain(): StatsCell[] {
    const out = [...this.cells.values()];
    this.cells = new Map();
    this.newest = new Map(); // a drained cell is no longer added to
    return out;
  }

  get pending(): number {
    return this.cells.size;
  }
}

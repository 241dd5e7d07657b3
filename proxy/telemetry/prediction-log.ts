import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from '../../common/logger.js';
import type { Role } from '../contract/route-table.js';
import type { Outcome } from '../contract/stats.js';

/** Which version answered which request. The input body is never kept, only its SHA-256. */
export interface PredictionRecord {
  requestId: string;
  deployment: string;
  version: string;
  role: Role;
  /** null when the body streamed through unbuffered (too large to hash on the hot path). */
  inputSha256: string | null;
  outcome: Outcome;
  latencyMs: number;
  at: number;
}

export interface PredictionSink {
  /** Stores a batch in one round-trip, at most once per `batchId` (a retry of a batch whose answer was lost). */
  write(records: PredictionRecord[], batchId: string): Promise<void>;
}

export interface PredictionLogOptions {
  /** Most records held in memory; beyond it new records are dropped and counted. */
  maxQueue: number;
  /** Records per insert. */
  batchSize: number;
  flushMs: number;
}

export const DEFAULT_PREDICTION_LOG: PredictionLogOptions = { maxQueue: 50_000, batchSize: 2_000, flushMs: 1_000 };

/**
 * A bounded queue in front of the sink: the request path only pushes (O(1), no I/O); a
 * timer writes batches. When the sink is down, records wait in the queue and are written
 * when it returns; only when the queue is full are new ones dropped — counted, never silent.
 */
export class PredictionLog {
  private queue: PredictionRecord[] = [];
  /** The id of the batch at the queue's head while it is unconfirmed. */
  private batchId: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> = Promise.resolve();
  dropped = 0;
  written = 0;

  constructor(
    private readonly sink: PredictionSink,
    private readonly opts: PredictionLogOptions,
    private readonly logger: Logger,
    private readonly onDrop: (n: number) => void = () => {},
    private readonly onWritten: (n: number) => void = () => {},
  ) {}

  record(r: PredictionRecord): void {
    if (this.queue.length >= this.opts.maxQueue) {
      this.dropped++;
      this.onDrop(1);
      return;
    }
    this.queue.push(r);
  }

  get queued(): number {
    return this.queue.length;
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.opts.flushMs);
    this.timer.unref();
  }

  /** Writes everything queued, batch by batch; never overlaps itself. Stops at the first failure. */
  flush(): Promise<void> {
    this.inFlight = this.inFlight.then(async () => {
      while (this.queue.length > 0) {
        // A failed batch is retried as the same batch with the same id (the queue's head is
        // kept until it is confirmed), so a write whose answer was lost is not stored twice.
        const batch = this.queue.slice(0, this.opts.batchSize);
        this.batchId ??= randomUUID();
        try {
          await this.sink.write(batch, this.batchId);
        } catch (err) {
          this.logger.warn(
            { err: (err as Error).message, queued: this.queue.length },
            'prediction log write failed; will retry',
          );
          return;
        }
        this.batchId = null;
        this.queue.splice(0, batch.length);
        this.written += batch.length;
        this.onWritten(batch.length);
      }
    });
    return this.inFlight;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}

/** PostgreSQL sink: one multi-row INSERT per batch through unnest (the table is created by the control plane's migrations). */
export class PgPredictionSink implements PredictionSink {
  constructor(private readonly pool: pg.Pool) {}

  private writes = 0;

  async write(records: PredictionRecord[], batchId: string): Promise<void> {
    if (records.length === 0) return;
    const col = <K extends keyof PredictionRecord>(k: K) => records.map((r) => r[k]);
    // One statement: the batch's id is recorded and its rows inserted only if the id is new.
    await this.pool.query(
      `WITH batch AS (INSERT INTO prediction_batches (id) VALUES ($9) ON CONFLICT (id) DO NOTHING RETURNING id)
       INSERT INTO predictions (request_id, deployment, version, role, input_sha256, outcome, latency_ms, at)
       SELECT u.* FROM batch, unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::timestamptz[]) AS u`,
      [
        col('requestId'),
        col('deployment'),
        col('version'),
        col('role'),
        col('inputSha256'),
        col('outcome'),
        col('latencyMs'),
        records.map((r) => new Date(r.at)),
        batchId,
      ],
    );
    // A batch is retried within minutes; its id need not be kept for long.
    if (++this.writes % 100 === 0)
      await this.pool.query(`DELETE FROM prediction_batches WHERE at < now() - interval '1 day'`);
  }
}

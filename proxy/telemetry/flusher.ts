import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/logger.js';
import type { StatsCell, StatsStore } from '../contract/stats.js';
import type { StatsAccumulator } from './accumulator.js';

/**
 * Moves accumulated cells to the stats store every `intervalMs` in one write. A write that
 * fails — or whose answer was lost, so nobody knows whether it was applied — is retried as
 * the same batch with the same id, which the store applies at most once: a Redis outage or a
 * flaky link delays stats, and never loses or doubles them. Cells recorded meanwhile wait in
 * the accumulator for the next batch.
 */
export class StatsFlusher {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> = Promise.resolve();
  /** The batch written last without a confirmed answer: retried as it is, with its id. */
  private unconfirmed: { id: string; cells: StatsCell[] } | null = null;

  constructor(
    private readonly acc: StatsAccumulator,
    private readonly store: StatsStore,
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly onFailure: () => void = () => {},
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Never overlaps itself: a slow write makes the next flush wait, then carry more. */
  flush(): Promise<void> {
    this.inFlight = this.inFlight.then(async () => {
      for (const e of this.acc.drainExamples()) {
        try {
          await this.store.addExamples(e.deployment, e.version, e.examples);
        } catch {
          for (const ex of e.examples) this.acc.example(e.deployment, e.version, ex); // kept (capped) for the next flush
        }
      }
      // The unconfirmed batch first (same id), then what was recorded since.
      for (let round = 0; round < 2; round++) {
        if (!this.unconfirmed) {
          const cells = this.acc.drain();
          if (cells.length === 0) return;
          this.unconfirmed = { id: randomUUID(), cells };
        }
        const batch = this.unconfirmed;
        try {
          await this.store.write(batch.cells, batch.id);
          this.unconfirmed = null;
        } catch (err) {
          this.onFailure();
          this.logger.warn(
            { err: (err as Error).message, unconfirmedCells: batch.cells.length, pendingCells: this.acc.pending },
            'stats flush failed or its answer was lost; the same batch will be retried',
          );
          return;
        }
      }
    });
    return this.inFlight;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}

import type { Logger } from '../../common/logger.js';
import type { StatsStore } from '../contract/stats.js';
import type { StatsAccumulator } from './accumulator.js';

/**
 * Moves accumulated cells to the stats store every `intervalMs` in one write. A failed
 * write puts the cells back, so a Redis outage delays stats instead of losing them.
 */
export class StatsFlusher {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> = Promise.resolve();

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
      const cells = this.acc.drain();
      if (cells.length === 0) return;
      try {
        await this.store.write(cells);
      } catch (err) {
        this.acc.restore(cells);
        this.onFailure();
        this.logger.warn(
          { err: (err as Error).message, pendingCells: this.acc.pending },
          'stats flush failed; will retry',
        );
      }
    });
    return this.inFlight;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}

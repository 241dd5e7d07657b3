import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/logger.js';
import { joinPendingFeedback } from '../metrics/business.js';
import type { ControlStore } from '../state/store.js';
import { ANALYSIS_LEASE, type RolloutService } from './service.js';

export interface LoopOptions {
  /** How often the loop wakes to look for canaries that are due (each has its own interval). */
  tickMs: number;
  /** Leadership lease length; a dead leader's lease expires after this and another replica takes over. */
  leaseMs: number;
  /** Republish the route table this often so Redis can never stay stale. */
  reconcileMs: number;
}

/**
 * Runs analyses on exactly one control-plane replica at a time (a lease row in
 * PostgreSQL: renewed every tick, taken over once it expires), every canary at its own
 * policy.interval, never overlapping. Every replica reconciles the route table.
 */
export class AnalysisLoop {
  readonly holder = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private timer: NodeJS.Timeout | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  leader = false;
  /** Told when this replica gains or loses the lease (the leader gauge). */
  onLeadership?: (leader: boolean) => void;
  onAnalysisFailure?: (deployment: string) => void;
  /** Analyses run by this replica (tests count them to prove one decision per tick). */
  analysesRun = 0;

  constructor(
    private readonly service: RolloutService,
    private readonly store: ControlStore,
    private readonly opts: LoopOptions,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    const schedule = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.running = this.tick().finally(() => {
          this.running = null;
          schedule();
        });
      }, this.opts.tickMs);
    };
    schedule();
    this.reconcileTimer = setInterval(() => void this.service.publishRoutes(), this.opts.reconcileMs);
    this.reconcileTimer.unref();
  }

  /** One pass: renew or take the lease, then analyse every canary that is due. */
  async tick(): Promise<void> {
    let leader: boolean;
    try {
      leader = await this.store.acquireLease(ANALYSIS_LEASE, this.holder, this.opts.leaseMs);
    } catch (err) {
      leader = false;
      this.logger.warn(
        { err: (err as Error).message },
        'leader lease unavailable (PostgreSQL down?); analysis paused on this replica',
      );
    }
    if (leader !== this.leader) {
      this.leader = leader;
      this.onLeadership?.(leader);
      this.logger.info({ holder: this.holder, leader }, leader ? 'became analysis leader' : 'lost analysis leadership');
      if (leader)
        await this.service
          .recordLeaderChange(this.holder)
          .catch((err) => this.logger.warn({ err: (err as Error).message }, 'could not record the leader change'));
    }
    if (!leader) return;
    try {
      await this.service.handleTrips(this.holder);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not read proxy trips');
    }
    try {
      // Outcomes that arrived before their predictions were logged join them now.
      await joinPendingFeedback(this.store.pool);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not join pending feedback');
    }
    let canaries: Awaited<ReturnType<ControlStore['runningCanaries']>>;
    try {
      canaries = await this.store.runningCanaries();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not list canaries');
      return;
    }
    const now = this.now();
    for (const c of canaries) {
      if (this.stopped) return;
      const last = c.lastAnalysisAt ?? c.stepStartedAt;
      const due = now - Math.max(last, c.stepStartedAt) >= c.policy.intervalMs;
      try {
        if (due) {
          await this.service.evaluate(c.deployment, 'analysis', this.holder);
          this.analysesRun++;
        } else if (await this.service.checkGrossFailure(c, this.holder)) {
          // Between intervals, every tick checks the canary for gross failure (always-valid,
          // so checking every second costs no false alarms) and analyses at once if it fails.
          this.analysesRun++;
        }
      } catch (err) {
        this.logger.error({ err: (err as Error).message, deployment: c.deployment }, 'analysis failed to run');
        this.onAnalysisFailure?.(c.deployment);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    await this.running;
    if (this.leader) await this.store.releaseLease(ANALYSIS_LEASE, this.holder).catch(() => {});
  }
}

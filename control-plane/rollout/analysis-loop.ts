import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/logger.js';
import type { FeedbackStore } from '../state/feedback-store.js';
import type { ControlStore } from '../state/store.js';
import type { CanaryRow } from '../state/types.js';
import { ANALYSIS_LEASE } from './deps.js';
import type { Rollout } from './rollout.js';
import { analysisDue } from './schedule.js';

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
 * policy.interval (schedule.ts), never overlapping. Every replica reconciles the route table.
 */
export class AnalysisLoop {
  readonly holder = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private timer: NodeJS.Timeout | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private leader = false;
  /** Told when this replica gains or loses the lease (the leader gauge). */
  onLeadership?: (leader: boolean) => void;
  onAnalysisFailure?: (deployment: string) => void;

  constructor(
    private readonly rollout: Rollout,
    private readonly store: ControlStore,
    private readonly feedback: FeedbackStore,
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
    this.reconcileTimer = setInterval(() => void this.rollout.changes.publishRoutes(), this.opts.reconcileMs);
    this.reconcileTimer.unref();
  }

  /** One pass: renew or take the lease, then analyse every canary that is due. */
  async tick(): Promise<void> {
    if (!(await this.lead())) return;
    await this.attempt('could not read proxy trips', () => this.rollout.analysis.handleTrips(this.holder));
    // Outcomes that arrived before their predictions were logged join them now.
    await this.attempt('could not join pending feedback', () => this.feedback.joinPending());
    const canaries = await this.attempt('could not list canaries', () => this.store.runningCanaries());
    const now = this.now();
    for (const c of canaries ?? []) {
      if (this.stopped) return;
      try {
        if (await this.shouldAnalyse(c, now))
          await this.rollout.analysis.evaluate(c.deployment, 'analysis', this.holder);
      } catch (err) {
        this.logger.error({ err: (err as Error).message, deployment: c.deployment }, 'analysis failed to run');
        this.onAnalysisFailure?.(c.deployment);
      }
    }
  }

  /** Due by its interval, or — between intervals — failing grossly (analysed at once, not at its next interval). */
  private async shouldAnalyse(c: CanaryRow, now: number): Promise<boolean> {
    return analysisDue(c, now) || (await this.rollout.analysis.grossFailing(c));
  }

  /** Renews or takes the lease; records a change of leader. */
  private async lead(): Promise<boolean> {
    let leader: boolean;
    try {
      leader = await this.store.acquireLease(ANALYSIS_LEASE, this.holder, this.opts.leaseMs);
    } catch (err) {
      leader = false;
      const msg = 'leader lease unavailable (PostgreSQL down?); analysis paused on this replica';
      this.logger.warn({ err: (err as Error).message }, msg);
    }
    if (leader !== this.leader) {
      this.leader = leader;
      this.onLeadership?.(leader);
      this.logger.info({ holder: this.holder, leader }, leader ? 'became analysis leader' : 'lost analysis leadership');
      if (leader)
        await this.attempt('could not record the leader change', () =>
          this.rollout.changes.recordLeaderChange(this.holder),
        );
    }
    return leader;
  }

  /** Runs one step of a tick; a failure is logged and the tick goes on. */
  private async attempt<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, what);
      return undefined;
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

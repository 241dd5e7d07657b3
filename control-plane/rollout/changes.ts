import type pg from 'pg';
import { CanaryError } from '../../common/errors.js';
import { buildRouteTable } from '../publish/build-table.js';
import type { ControlStore } from '../state/store.js';
import type { DeploymentRow, EventRow, EventType } from '../state/types.js';
import type { ChangeDeps, Precondition } from './deps.js';

/**
 * The unit of work every state change goes through: one transaction holding the deployment's
 * row lock, with the events it writes collected and announced (alerts) once it commits, and
 * the route table published after. Commands and the analysis executor both change state here.
 */
export class Changes {
  /** Events written in the transaction running on each client, announced once it commits. */
  private readonly emitted = new WeakMap<pg.PoolClient, EventRow[]>();
  constructor(private readonly deps: ChangeDeps) {}
  private get store(): ControlStore {
    return this.deps.store;
  }

  /** Publishes the current route table; failures are logged and repaired by the reconcile loop. */
  async publishRoutes(): Promise<void> {
    try {
      await this.deps.publisher.publish(buildRouteTable(await this.store.routeRows()));
    } catch (err) {
      this.deps.logger.warn(
        { err: (err as Error).message },
        'route table publish failed; the reconcile loop will retry',
      );
    }
  }

  /**
   * A change to one deployment, optimistic: the revision seen first must still hold under
   * the lock, so of two racing requests the second gets 409 instead of acting on a state
   * it never saw (a rollback meant for a canary must not roll back the new baseline).
   */
  async change<T>(
    name: string,
    fn: (q: pg.PoolClient, d: DeploymentRow) => Promise<T>,
    pre: Precondition = {},
  ): Promise<T> {
    // With If-Match the caller says which revision it saw; without, the one read just now.
    const ifMatch = pre.ifMatch !== undefined && pre.ifMatch !== null;
    const expectedRevision = ifMatch ? pre.ifMatch : await this.store.revision(name);
    const guarded = async (q: pg.PoolClient, d: DeploymentRow) => {
      if (pre.canary !== undefined && d.canary?.version !== pre.canary) {
        throw new CanaryError(
          'CANARY_MISMATCH',
          `the request is for canary ${pre.canary}, but ${d.canary ? `canary ${d.canary.version} is running` : 'no canary is running'} for ${name}; nothing was changed`,
        );
      }
      return fn(q, d);
    };
    const out = await this.locked(name, guarded, { expectedRevision, ifMatch, bump: pre.deleted ? false : undefined });
    await this.publishRoutes();
    return out;
  }

  /**
   * `fn` under the deployment's row lock (ControlStore.withDeployment); the events it writes
   * are announced once it commits. Publishing is the caller's: only it knows if routes changed.
   */
  async locked<T>(
    name: string,
    fn: (q: pg.PoolClient, d: DeploymentRow) => Promise<T>,
    opts: { expectedRevision?: number | null; bump?: boolean; ifMatch?: boolean } = {},
  ): Promise<T> {
    const { out, events } = await this.store.withDeployment(name, this.collecting(fn), opts);
    this.announce(events);
    return out;
  }

  /** A transaction that is not about one existing deployment (creating one); events announced after commit. */
  async transaction<T>(fn: (q: pg.PoolClient) => Promise<T>): Promise<T> {
    const { out, events } = await this.store.transaction(this.collecting(fn));
    this.announce(events);
    return out;
  }

  /** Wraps a transaction body so the events it writes are returned with its result. */
  private collecting<A extends unknown[], T>(fn: (q: pg.PoolClient, ...rest: A) => Promise<T>) {
    return async (q: pg.PoolClient, ...rest: A) => {
      this.emitted.set(q, []);
      const out = await fn(q, ...rest);
      const events = this.emitted.get(q)!;
      this.emitted.delete(q);
      return { out, events };
    };
  }

  private announce(events: EventRow[]): void {
    if (events.length && this.deps.onEvents) this.deps.onEvents(events);
  }

  /**
   * A replica became the analysis leader: a global event (deployment "*"), written only when
   * the holder changes — a replica that lost and regained the lease through a database outage,
   * with nobody else holding it meanwhile, is not a change (and would alert for nothing).
   */
  async recordLeaderChange(holder: string): Promise<void> {
    if ((await this.store.lastLeader()) === holder) return;
    const e = await this.store.insertEvent(this.store.pool, {
      deployment: '*',
      type: 'leader_changed',
      actor: holder,
      reason: `${holder} became the analysis leader`,
      after: { holder },
    });
    this.announce([e]);
  }

  /** Writes an event in the transaction running on `q`; it is announced once that commits. */
  async event(
    q: pg.PoolClient,
    deployment: string,
    type: EventType,
    actor: string,
    reason: string | null,
    before: unknown,
    after: unknown,
  ) {
    const e = await this.store.insertEvent(q, { deployment, type, actor, reason, before, after });
    this.emitted.get(q)?.push(e);
    return e;
  }
}

import type pg from 'pg';
import { CanaryError } from '../../common/errors.js';
import { approvalTarget } from '../model/gates.js';
import type { ControlStore } from '../state/store.js';
import type { DeploymentRow } from '../state/types.js';
import type { Changes } from './changes.js';

/**
 * The two ways a canary ends, shared by the commands people call and the analysis executor:
 * rows and events inside the caller's transaction.
 */
export class Transitions {
  constructor(
    private readonly store: ControlStore,
    private readonly changes: Changes,
  ) {}

  async promote(
    q: pg.PoolClient,
    d: DeploymentRow,
    reason: string | null,
    actor: string,
    auto: boolean,
  ): Promise<void> {
    const c = d.canary;
    if (!c) throw new CanaryError('NO_CANARY', `no canary is running for ${d.name}: nothing to promote`);
    if (auto)
      await this.changes.event(
        q,
        d.name,
        'auto_promote_triggered',
        actor,
        reason,
        { weight: c.weight },
        { canary: c.version },
      );
    await this.store.endCanary(q, c.id, 'promoted');
    await this.store.setVersionState(q, d.name, d.baselineVersion, 'retired');
    await this.store.setVersionState(q, d.name, c.version, 'serving');
    await this.store.setDeployment(q, d.name, { status: 'stable', baselineVersion: c.version });
    await this.changes.event(
      q,
      d.name,
      'promoted',
      actor,
      reason,
      { baseline: d.baselineVersion, canary: c.version, weight: c.weight },
      { baseline: c.version },
    );
  }

  async rollbackCanary(
    q: pg.PoolClient,
    d: DeploymentRow,
    reason: string | null,
    actor: string,
    auto: boolean,
    evidence?: unknown,
  ): Promise<void> {
    const c = d.canary!;
    // A rollback never waits for a person: whatever waited for approval is cancelled, and said so.
    const pending = c.state.awaitingApproval;
    if (pending) reason = `${reason ?? 'rolled back'}; the pending approval to ${approvalTarget(pending)} is cancelled`;
    const cancelled = pending ? { approvalCancelled: pending } : {};
    if (auto)
      await this.changes.event(
        q,
        d.name,
        'auto_rollback_triggered',
        actor,
        reason,
        { weight: c.weight },
        { weight: 0, evidence, ...cancelled },
      );
    await this.store.endCanary(q, c.id, 'rolled_back');
    await this.store.setVersionState(q, d.name, c.version, 'rolled_back');
    await this.store.setDeployment(q, d.name, { status: 'stable' });
    await this.changes.event(
      q,
      d.name,
      'rolled_back',
      actor,
      reason,
      { target: 'canary', canary: c.version, weight: c.weight },
      { canary: null, weight: 0, baseline: d.baselineVersion, ...cancelled },
    );
  }
}

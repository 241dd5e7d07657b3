import type pg from 'pg';
import { CanaryError } from '../../../common/errors.js';
import type { LinkClaims } from '../../approvals/links.js';
import { approvalTarget } from '../../model/gates.js';
import type { AwaitingApproval } from '../../model/progress.js';
import type { CanaryRow, DeploymentRow } from '../../state/types.js';
import type { Changes } from '../changes.js';
import { foldStep } from '../decide.js';
import { type Precondition, type RolloutDeps, RolloutPart } from '../deps.js';
import { progressOf, stateOf } from '../progress-state.js';
import { deploymentOrThrow } from '../queries.js';
import type { Transitions } from '../transitions.js';

/**
 * A person approves what the analysis found ready and held for them (policy.approvals): the
 * waiting step or promotion is carried out at once, in the same transaction as its events.
 * Under the deployment's lock, so an approval racing an automatic rollback has one outcome:
 * whichever commits first; the other finds nothing waiting (409) or a canary that is gone.
 */
export class ApprovalCommands extends RolloutPart {
  constructor(
    deps: RolloutDeps,
    private readonly changes: Changes,
    private readonly transitions: Transitions,
  ) {
    super(deps);
  }

  async approve(name: string, reason: string | null, actor: string, pre: Precondition = {}): Promise<DeploymentRow> {
    await this.changes.change(
      name,
      async (q, d) => {
        const c = d.canary;
        const waiting = c?.state.awaitingApproval;
        if (!c || !waiting)
          throw new CanaryError(
            'NOTHING_TO_APPROVE',
            c
              ? `nothing of ${name} waits for approval: canary ${c.version} is at ${c.weight}% (last verdict ${c.lastVerdict ?? 'none yet'})`
              : `nothing of ${name} waits for approval: no canary is running`,
          );
        await this.carryOut(q, d, c, waiting, reason, actor);
      },
      pre,
    );
    return deploymentOrThrow(this.store, name);
  }

  /**
   * Approval from an alert's link (actor "link"): only what the link was made for — that canary,
   * that step, waiting since then — and only once (its id is recorded in this transaction).
   */
  async approveFromLink(claims: LinkClaims & { id: string }, reason: string | null): Promise<DeploymentRow> {
    await this.changes.change(claims.d, async (q, d) => {
      // Its id recorded first: a link used once is "used" from then on, not "superseded".
      const fresh = await q.query(
        'INSERT INTO used_approval_links (id, deployment) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id',
        [claims.id, claims.d],
      );
      if (fresh.rowCount === 0) throw new CanaryError('LINK_USED', 'this approval link has already been used');
      const c = d.canary;
      const waiting = c?.state.awaitingApproval;
      const linked = approvalTarget({ kind: claims.k, weight: claims.w });
      if (!c || c.id !== claims.c || !waiting || waiting.kind !== claims.k || waiting.since !== claims.s)
        throw new CanaryError(
          'LINK_SUPERSEDED',
          `this link was for canary ${c?.id === claims.c ? c.version : `#${claims.c}`}, ready to ${linked} since ${new Date(claims.s).toISOString()}, which no longer waits: ${
            !c
              ? 'no canary is running'
              : c.id !== claims.c
                ? `canary ${c.version} runs now`
                : waiting
                  ? `now it waits to ${approvalTarget(waiting)} (a newer alert has its link)`
                  : `it is at ${c.weight}% and nothing waits`
          }`,
        );
      await this.carryOut(q, d, c, waiting, reason, 'link');
    });
    return deploymentOrThrow(this.store, claims.d);
  }

  private async carryOut(
    q: pg.PoolClient,
    d: DeploymentRow,
    c: CanaryRow,
    waiting: AwaitingApproval,
    reason: string | null,
    actor: string,
  ): Promise<void> {
    await this.changes.event(
      q,
      d.name,
      'approved',
      actor,
      reason,
      { weight: c.weight, awaiting: waiting },
      { canary: c.version, kind: waiting.kind, weight: waiting.weight ?? 100 },
    );
    const why = reason ?? `approved by ${actor} to ${approvalTarget(waiting)}`;
    if (waiting.kind === 'promote') return this.transitions.promote(q, d, why, actor, false);
    const at = this.now();
    const folded = foldStep(progressOf(c, false), waiting.weight!, at);
    await this.store.setCanaryWeight(q, c.id, waiting.weight!, at, stateOf(folded));
    await this.changes.event(q, d.name, 'step_advanced', actor, why, { weight: c.weight }, { weight: waiting.weight });
  }
}

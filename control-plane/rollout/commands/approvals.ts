import { CanaryError } from '../../../common/errors.js';
import type { DeploymentRow } from '../../state/types.js';
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
        const what = waiting.kind === 'promote' ? 'promotion' : `step to ${waiting.weight}%`;
        await this.changes.event(
          q,
          name,
          'approved',
          actor,
          reason,
          { weight: c.weight, awaiting: waiting },
          { canary: c.version, kind: waiting.kind, weight: waiting.weight ?? 100 },
        );
        const why = reason ?? `the ${what} was approved by ${actor}`;
        if (waiting.kind === 'promote') return this.transitions.promote(q, d, why, actor, false);
        const at = this.now();
        const folded = foldStep(progressOf(c, false), waiting.weight!, at);
        await this.store.setCanaryWeight(q, c.id, waiting.weight!, at, stateOf(folded));
        await this.changes.event(
          q,
          name,
          'step_advanced',
          actor,
          why,
          { weight: c.weight },
          { weight: waiting.weight },
        );
      },
      pre,
    );
    return deploymentOrThrow(this.store, name);
  }
}

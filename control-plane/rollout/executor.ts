import type { VersionStats } from '../../proxy/contract/stats.js';
import type { Trip } from '../../proxy/contract/trip.js';
import { approvalTarget } from '../model/gates.js';
import type { Decision } from '../model/verdict.js';
import type { ControlStore } from '../state/store.js';
import type { CanaryRow } from '../state/types.js';
import type { Changes } from './changes.js';
import { ANALYSIS_LEASE } from './deps.js';
import { progressOf, stateOf } from './progress-state.js';
import type { Transitions } from './transitions.js';

/**
 * Carries out a decision: the analysis row with decide()'s memory, the events a person reads in
 * the audit trail, and the actions (advance, promote, roll back) — in one transaction, and only
 * if the canary is still the one that was measured and this replica still leads. It decides
 * nothing itself: which events follow is read from the decision's actions.
 */
export class Executor {
  constructor(
    private readonly store: ControlStore,
    private readonly changes: Changes,
    private readonly transitions: Transitions,
  ) {}

  /** Returns whether it applied the decision (false: the canary changed meanwhile, or leadership was lost). */
  async apply(
    c: CanaryRow,
    decision: Decision,
    measured: { baseline: VersionStats | null; canary: VersionStats | null },
    at: number,
    actor: string,
    leaseHolder?: string,
  ): Promise<boolean> {
    const name = c.deployment;
    const waits = decision.actions.some((a) => a.type === 'await_approval');
    const moves = decision.actions.some((a) => a.type !== 'await_approval');
    const applied = await this.changes.locked(
      name,
      async (q, locked) => {
        const current = locked.canary;
        // Someone changed the canary while we measured: this verdict is about a state that is gone.
        if (!current || current.id !== c.id || current.weight !== c.weight || current.stepStartedAt !== c.stepStartedAt)
          return false;
        if (leaseHolder && !(await this.store.holdsLease(q, ANALYSIS_LEASE, leaseHolder))) return false;
        const paused = locked.status === 'paused';
        const actions = paused ? [] : decision.actions;
        const reason = decision.reasons.join('; ');
        const business = decision.business ?? null;
        await this.store.recordAnalysis(
          q,
          {
            canaryId: c.id,
            deployment: name,
            verdict: decision.verdict,
            reasons: decision.reasons,
            baselineStats: measured.baseline && { ...measured.baseline, business: business?.baseline ?? null },
            canaryStats: measured.canary && {
              ...measured.canary,
              business: business?.canary ?? null,
              businessChange: business?.relativeChange ?? null,
              businessPValue: business?.pValue ?? null,
            },
            weight: c.weight,
            rules: decision.rules,
            needs: decision.needs ?? null,
            action: actions.map((a) => a.type).join(',') || 'hold',
            actor,
          },
          // With the actions held (paused), the step is not advanced: keep the un-advanced memory.
          stateOf(actions.length === decision.actions.length ? decision.progress : progressOf(c, paused)),
          at,
        );
        // An analysis writes an event only when its verdict changes (or when it acts).
        const changed = decision.verdict !== c.lastVerdict;
        const failing = decision.verdict === 'critical' || decision.verdict === 'error';
        const evidence = {
          baseline: measured.baseline,
          canary: measured.canary,
          rules: decision.rules.filter((r) => r.status === 'fail' || r.status === 'warn'),
        };
        if (failing && (changed || actions.some((a) => a.type === 'rollback'))) {
          await this.changes.event(
            q,
            name,
            'analysis_failed',
            actor,
            reason,
            { verdict: c.lastVerdict },
            { verdict: decision.verdict, autoRollback: c.policy.autoRollback, ...evidence },
          );
        }
        // A biased split holds the canary: said once, when the verdict turns on it (and alerted).
        const mismatch = decision.rules.find((r) => r.rule === 'sample_ratio' && r.status === 'warn');
        if (mismatch && changed)
          await this.changes.event(
            q,
            name,
            'sample_ratio_mismatch',
            actor,
            mismatch.summary,
            { verdict: c.lastVerdict },
            { verdict: decision.verdict, weight: c.weight, rule: mismatch },
          );
        for (const a of actions) {
          if (a.type === 'await_approval') {
            const was = c.state.awaitingApproval;
            const now = decision.progress.awaitingApproval;
            // Said once, when it starts waiting (and alerted): later analyses only keep it waiting.
            if (now && (!was || was.kind !== now.kind || was.weight !== now.weight)) {
              await this.changes.event(
                q,
                name,
                'approval_requested',
                actor,
                `ready to ${approvalTarget(now)}, waiting for approval: ${reason}`,
                { weight: c.weight },
                { ...now, canary: c.version, canaryId: c.id, rules: decision.rules },
              );
            }
          } else if (a.type === 'advance') {
            if (a.fromShadow) {
              const after = { weight: a.weight, rules: decision.rules };
              await this.changes.event(q, name, 'shadow_passed', actor, reason, { weight: 0 }, after);
            }
            await this.store.setCanaryWeight(q, c.id, a.weight, at, stateOf(decision.progress));
            await this.changes.event(
              q,
              name,
              'step_advanced',
              actor,
              reason,
              { weight: c.weight },
              { weight: a.weight },
            );
          } else if (a.type === 'promote') {
            await this.transitions.promote(q, locked, reason, actor, true);
          } else if (a.type === 'rollback') {
            if (a.fromShadow)
              await this.changes.event(q, name, 'shadow_failed', actor, reason, { weight: 0 }, evidence);
            await this.transitions.rollbackCanary(q, locked, reason, actor, true, evidence);
          }
        }
        return true;
      },
      // Waiting for approval changes the deployment's view (bump) only when it starts; the routes not at all.
      { bump: moves || (waits && !c.state.awaitingApproval) },
    );
    if (applied && moves) await this.changes.publishRoutes();
    return applied;
  }

  /**
   * A canary a proxy tripped on its own: recorded as `proxy_tripped` with its evidence and,
   * when it is still the one running and autoRollback is on, rolled back through the normal
   * path. A trip for a canary no longer running is recorded and changes nothing. Returns
   * whether it rolled one back.
   */
  async trip(trip: Trip, reason: string, leaseHolder?: string): Promise<boolean> {
    const acted = await this.changes.locked(trip.deployment, async (q, d) => {
      if (leaseHolder && !(await this.store.holdsLease(q, ANALYSIS_LEASE, leaseHolder))) return false;
      const running = d.canary?.version === trip.version;
      const before = { canary: d.canary?.version ?? null };
      await this.changes.event(q, d.name, 'proxy_tripped', 'proxy', reason, before, { ...trip, running });
      if (!running || d.status === 'paused' || !d.canary!.policy.autoRollback) return false;
      await this.transitions.rollbackCanary(q, d, reason, 'proxy', true, { trip });
      return true;
    });
    if (acted) await this.changes.publishRoutes();
    return acted;
  }
}

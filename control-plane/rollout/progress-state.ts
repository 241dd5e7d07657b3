import type { CanaryProgress } from '../model/progress.js';
import type { AnalysisState, CanaryRow } from '../state/types.js';

/** decide()'s memory of a canary, to and from the row it is stored in. */

/** decide()'s input memory for a stored canary. */
export function progressOf(c: CanaryRow, paused: boolean): CanaryProgress {
  return { weight: c.weight, stepStartedAt: c.stepStartedAt, paused, ...c.state };
}

/** The part of decide()'s memory that is stored with the canary. */
export function stateOf(p: CanaryProgress): AnalysisState {
  return {
    strata: p.strata ?? [],
    limits: p.limits ?? null,
    lastStep: p.lastStep ?? null,
    p99BreachSince: p.p99BreachSince,
    businessBreachSince: p.businessBreachSince ?? null,
    ...(p.phase ? { phase: p.phase } : {}),
    ...(p.warmedAt != null ? { warmedAt: p.warmedAt } : {}),
    ...(p.awaitingApproval ? { awaitingApproval: p.awaitingApproval } : {}),
  };
}

/**
 * Whether a request's body is held in memory (so it can be sent a second time: a retry or
 * hedge on the baseline, or a shadow to the canary) or streamed, and whether it is shadowed.
 * Holding bodies costs memory: all held bodies together stay within CANARY_BUFFER_BUDGET_BYTES;
 * past it the body streams and the request is neither retried nor hedged (it still counts, and
 * still goes to its variant).
 */
export interface BodyPlanInput {
  /** The request goes to the canary by a routing draw, and the deployment retries canaries on the baseline. */
  wantsSafetyNet: boolean;
  /** The shadow sampler picked this (baseline) request. */
  shadowSampled: boolean;
  /** Content-Length as declared (0 when absent). */
  declared: number;
  /** Bodies up to this many bytes are buffered; larger ones stream (and are never shadowed). */
  bufferBodyBytes: number;
  bufferBudgetBytes: number;
  /** Bytes of bodies held right now by requests in flight. */
  heldBytes: number;
}

export interface BodyPlan {
  /** Hold the body for a second send. */
  hold: boolean;
  /** Shadow this request (it fits); a sampled request that does not fit is counted as dropped. */
  shadow: 'start' | 'drop' | 'none';
  /** The safety net was wanted but the budget is spent (counted). */
  overBudget: boolean;
}

/** Pure: the plan for one request's body. */
export function planBody(i: BodyPlanInput): BodyPlan {
  const withinBudget = i.heldBytes + i.declared <= i.bufferBudgetBytes;
  // Only small bodies are shadowed (past bufferBodyBytes the shadow is dropped).
  const shadowFits = i.shadowSampled && i.declared <= i.bufferBodyBytes && withinBudget;
  const net = i.wantsSafetyNet && withinBudget;
  return {
    hold: net || shadowFits,
    shadow: shadowFits ? 'start' : i.shadowSampled ? 'drop' : 'none',
    overBudget: i.wantsSafetyNet && !net,
  };
}

function nothingHeld(): void {}

/** The bytes of request bodies held for a second send, across all requests in flight. */
export class HeldBodies {
  bytes = 0;
  /** Counts `n` bytes as held; returns the release. */
  take(n: number): () => void {
    if (n === 0) return nothingHeld;
    this.bytes += n;
    return () => {
      this.bytes -= n;
    };
  }
}

import type { VersionStats } from '../../proxy/contract/stats.js';
import type { OutcomeStats } from './outcomes.js';

/** What the analysis knows of a canary between looks, and what each look reads: decide()'s input. */

/** Per-variant counts of one step: requests, model errors, and requests above the latency limits. */
export interface StepCounts {
  n: number;
  errors: number;
  /**
   * Requests the latency counts (slow95, slow99, the stream counts) cover: fewer than `n` when
   * part of the step fell in the canary's warm-up (policy.warmup); absent means all `n`.
   */
  latencyN?: number;
  slow95: number;
  slow99: number;
  /** Streams with a time per output token, and how many of them were over the step's TPOT limit. */
  tpotN?: number;
  slowTpot?: number;
  /** Streams that carried tokens, and how many were longer than the step's length limit. */
  tokensN?: number;
  longAnswers?: number;
  /** Of `errors`, those the request's retry on the baseline failed too (a fault both share). */
  retryFailed?: number;
  /** Requests routed by a sticky key, per key group, then their errors (proxy/contract/key-groups.ts). */
  keyed?: number[];
  /** Routing draws decided during the step (absent where the proxies did not count them). */
  routed?: number;
}

/** The latency limits of one step, fixed once from the baseline's latency (never from the canary's). */
export interface LatencyLimits {
  /** The canary's p95 must stay at or under this: baseline p95 + latencyP95DeltaMs (or × latencyP95Ratio). */
  p95Ms: number;
  /** The canary's p99 must stay at or under this: latencyP99Ratio × baseline p99. */
  p99Ms: number;
  baselineP95Ms: number;
  baselineP99Ms: number;
  /** Streams: tpotRatio × the baseline's median time per output token (null: too few baseline streams). */
  tpotMs?: number | null;
  baselineTpotMs?: number | null;
  /** Streams, with outputTokensRatio set: that ratio × the baseline's median answer length in tokens. */
  tokensLimit?: number | null;
  baselineTokens?: number | null;
}

/** One finished step (a stratum of the evidence): its weight, time span and counts. */
export interface Stratum {
  weight: number;
  from: number;
  to: number;
  limits: LatencyLimits | null;
  canary: StepCounts;
  baseline: StepCounts;
}

/** What decide() remembers of a canary between analyses (persisted with the canary). */
export interface CanaryProgress {
  weight: number;
  /** Epoch ms the current step (weight) began; its stats are read from here. */
  stepStartedAt: number;
  paused: boolean;
  /** The canary's finished steps: evidence accumulates over its whole life. */
  strata?: Stratum[];
  /** The current step's latency limits, once fixed. */
  limits?: LatencyLimits | null;
  /** The current step as the last analysis saw it: folded into `strata` if the weight is changed by hand. */
  lastStep?: Stratum | null;
  /** Since when the p99 test has said the canary's p99 is over its limit; cleared only when it passes again. */
  p99BreachSince: number | null;
  /** Since when the business metric has shown a significant drop; null if not. */
  businessBreachSince?: number | null;
  /** "shadow" while the canary is in its shadow phase (weight 0, policy.shadow); absent once live. */
  phase?: 'shadow';
  /** When the canary's warm-up ended (policy.warmup): its latency counts from here. */
  warmedAt?: number | null;
  /** A step or the promotion the analysis found ready, held for a person's approval (policy.approvals). */
  awaitingApproval?: AwaitingApproval | null;
}

/** What waits for approval, since when, and the evidence that made it ready. */
export interface AwaitingApproval {
  kind: 'step' | 'promote';
  /** The weight the step goes to (kind "step"). */
  weight?: number;
  /** Epoch ms the analysis first found it ready. */
  since: number;
  /** Canary requests judged when it became ready, and the verdict's reasons then. */
  canaryRequests: number;
  reasons: string[];
}

/** Outcomes per variant since the canary started, when feedback is being sent. */
export type BusinessInput = { baseline: OutcomeStats; canary: OutcomeStats } | null;

/**
 * Stats of the current step ([stepStartedAt, now]) per variant, and, while the step's latency
 * limits are not fixed yet, the baseline's stats from the `window` before the step.
 */
export type StatsInput =
  | {
      baseline: VersionStats;
      canary: VersionStats;
      reference?: VersionStats | null;
      business?: BusinessInput;
      /**
       * The step's stats from the end of the canary's warm-up, which the latency rules read:
       * null while it is warming up, absent when the whole step is past its warm-up.
       */
      latency?: { baseline: VersionStats; canary: VersionStats } | null;
      /** When the warm-up ended, once known (kept in the progress). */
      warmedAt?: number | null;
    }
  | { error: string };

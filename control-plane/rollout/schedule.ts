/**
 * When a canary's analysis is due and what it reads: shared by the analysis loop and by
 * `npm run sim`, so the simulation replays the schedule that runs.
 */

/** A step's stats start at the whole second after it began: that second mixes two weights. */
export const stepReadFrom = (stepStartedAt: number): number => (Math.floor(stepStartedAt / 1000) + 1) * 1000;

/** The part of a canary the schedule looks at. */
export interface Scheduled {
  stepStartedAt: number;
  lastAnalysisAt: number | null;
  policy: { intervalMs: number; windowMs: number };
}

/**
 * Due once `interval` has passed since the later of its last analysis and its step's start:
 * a new step waits a whole interval for evidence of its own. Between due analyses, every tick
 * runs only the fast gross-failure check.
 */
export function analysisDue(c: Scheduled, now: number): boolean {
  const last = Math.max(c.lastAnalysisAt ?? c.stepStartedAt, c.stepStartedAt);
  return now - last >= c.policy.intervalMs;
}

/**
 * The spans an analysis at `now` reads: the current step, and — while the step's latency
 * limits are not fixed — the baseline over `window` before the step (its reference latency).
 */
export function readWindows(
  c: Scheduled,
  now: number,
): { step: { from: number; to: number }; reference: { from: number; to: number } } {
  const from = stepReadFrom(c.stepStartedAt);
  return { step: { from, to: now }, reference: { from: c.stepStartedAt - c.policy.windowMs, to: from - 1000 } };
}

/**
 * The earliest end of a canary's warm-up (policy.warmup): the first whole second at least
 * `durationMs` after it started. (It ends there, or later once the canary has served the
 * warm-up's requests.)
 */
export const warmupEarliest = (startedAt: number, durationMs: number): number =>
  Math.ceil((startedAt + durationMs) / 1000) * 1000;

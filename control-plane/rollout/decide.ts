import type { VersionStats } from '../../proxy/telemetry/stats.js';
import { ABSOLUTE_RULE_MIN_REQUESTS, type Policy } from './policy.js';
import { businessTest, type OutcomeStats } from './business.js';

/**
 * Verdicts (DESIGN.md §3), one doc line each:
 * - healthy: within every threshold — advance to the next step, or promote after the last;
 * - degraded: past half of a relative threshold (or p99 over its ratio, not yet for long) — hold;
 * - critical: a threshold crossed — roll back when autoRollback, else only record it;
 * - inconclusive: too few canary requests — keep going, never promote (roll back only on
 *   the absolute error rule with at least ABSOLUTE_RULE_MIN_REQUESTS);
 * - error: metrics unavailable — hold; never act on missing data.
 */
export type Verdict = 'healthy' | 'degraded' | 'critical' | 'inconclusive' | 'error';

/** What decide() remembers of a canary between analyses. */
export interface CanaryProgress {
  weight: number;
  /** Epoch ms the current step (weight) began; the stats window never reaches before it. */
  stepStartedAt: number;
  paused: boolean;
  /** Since when the canary's p99 has been above latencyP99Ratio × the baseline's; null if not. */
  p99BreachSince: number | null;
  /** Since when the business metric has shown a significant drop; null if not (absent = null). */
  businessBreachSince?: number | null;
}

/** Outcomes per variant since the canary started, when feedback is being sent. */
export type BusinessInput = { baseline: OutcomeStats; canary: OutcomeStats } | null;

export type StatsInput = { baseline: VersionStats; canary: VersionStats; business?: BusinessInput } | { error: string };

export type Action =
  | { type: 'advance'; weight: number }
  | { type: 'promote' }
  | { type: 'rollback' }
  /** Critical with autoRollback off: the failure is recorded, nothing else happens. */
  | { type: 'record_failure' };

export interface Decision {
  verdict: Verdict;
  reasons: string[];
  actions: Action[];
  progress: CanaryProgress;
}

/** Comparisons are strict with a little slack for float noise: exactly +5 points is not critical. */
const EPS = 1e-9;
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const ms = (x: number) => `${x.toFixed(1)}ms`;

/** Where the stats window for an analysis at `now` begins: the policy window, clipped to the step. */
export function windowStart(progress: CanaryProgress, policy: Policy, now: number): number {
  return Math.max(now - policy.windowMs, progress.stepStartedAt);
}

/** The weight after `weight` in the policy's steps, or null when the ramp is done. */
export function nextStep(policy: Policy, weight: number): number | null {
  return policy.steps.find((s) => s > weight + EPS) ?? null;
}

/**
 * The canary brain. Pure: no I/O, no clock — `now` is an argument — so whole rollouts can
 * be replayed on a fake clock. Returns the verdict, why, what to do, and the new progress.
 *
 * When both error rates are 0 and latency is within bounds the verdict is healthy, so a
 * canary with no errors walks its steps and is promoted (with enough requests).
 * At a step where the baseline gets too little traffic to compare (e.g. 100%), only the
 * absolute rules apply.
 */
function businessRule(progress: CanaryProgress, policy: Policy, business: BusinessInput, now: number) {
  const out = { critical: [] as string[], degraded: [] as string[], breachSince: null as number | null };
  if (!business) return out;
  const { baseline: b, canary: c } = business;
  // Too few outcomes: inconclusive for this rule, never a rollback.
  if (b.n < policy.businessMinOutcomes || c.n < policy.businessMinOutcomes) return out;
  const t = businessTest(b, c, policy.businessDropMax, policy.confidence);
  if (t.pValue > 1 - policy.confidence) return out;
  out.breachSince = progress.businessBreachSince ?? now;
  const held = now - out.breachSince;
  const msg = `business metric: canary mean ${c.mean.toFixed(4)} vs baseline ${b.mean.toFixed(4)} is more than ${pct(policy.businessDropMax)} lower (always-valid p=${t.pValue.toFixed(4)}) for ${Math.round(held / 1000)}s`;
  if (held >= policy.businessForMs) out.critical.push(`${msg} (limit ${Math.round(policy.businessForMs / 1000)}s)`);
  else out.degraded.push(msg);
  return out;
}

export function decide(progress: CanaryProgress, policy: Policy, stats: StatsInput, now: number): Decision {
  const hold = (verdict: Verdict, reasons: string[], p: CanaryProgress = progress): Decision => ({ verdict, reasons, actions: [], progress: p });
  if ('error' in stats) return hold('error', [`metrics unavailable: ${stats.error}`]);

  const { baseline: b, canary: c } = stats;
  const t = policy.thresholds;
  const critical: string[] = [];
  const degraded: string[] = [];
  const notes: string[] = [];

  if (c.requests >= ABSOLUTE_RULE_MIN_REQUESTS && c.errorRate > t.errorRateMax + EPS) {
    critical.push(`canary error rate ${pct(c.errorRate)} is above the ${pct(t.errorRateMax)} maximum (${c.modelErrors}/${c.requests})`);
  }
  // Business metric (independent of request counts: outcomes accumulate over the canary's life).
  const business = businessRule(progress, policy, stats.business ?? null, now);
  progress = { ...progress, businessBreachSince: business.breachSince };
  critical.push(...business.critical);
  degraded.push(...business.degraded);

  if (c.requests < policy.minRequests) {
    if (critical.length) return act('critical', critical, progress);
    if (degraded.length) return hold('degraded', degraded, progress);
    return hold('inconclusive', [`only ${c.requests} canary requests in the window (need ${policy.minRequests})`]);
  }

  let p99BreachSince: number | null = null;
  const comparable = b.requests >= policy.minRequests;
  if (!comparable) {
    notes.push(`baseline has ${b.requests} requests in the window: relative rules skipped, absolute rules only`);
  } else {
    const delta = c.errorRate - b.errorRate;
    if (delta > t.errorRateDelta + EPS) critical.push(`canary error rate ${pct(c.errorRate)} exceeds baseline ${pct(b.errorRate)} by ${pct(delta)} (limit ${pct(t.errorRateDelta)})`);
    else if (delta > t.errorRateDelta / 2 + EPS) degraded.push(`canary error rate ${pct(c.errorRate)} exceeds baseline ${pct(b.errorRate)} by ${pct(delta)}, past half the ${pct(t.errorRateDelta)} limit`);

    if (c.p95 !== null && b.p95 !== null) {
      const d95 = c.p95 - b.p95;
      if (d95 > t.latencyP95DeltaMs + EPS) critical.push(`canary p95 ${ms(c.p95)} exceeds baseline ${ms(b.p95)} by ${ms(d95)} (limit ${t.latencyP95DeltaMs}ms)`);
      else if (d95 > t.latencyP95DeltaMs / 2 + EPS) degraded.push(`canary p95 ${ms(c.p95)} exceeds baseline ${ms(b.p95)} by ${ms(d95)}, past half the ${t.latencyP95DeltaMs}ms limit`);
    }
    if (c.p99 !== null && b.p99 !== null && c.p99 > t.latencyP99Ratio * b.p99 + EPS) {
      p99BreachSince = progress.p99BreachSince ?? now;
      const held = now - p99BreachSince;
      const msg = `canary p99 ${ms(c.p99)} is over ${t.latencyP99Ratio}× baseline ${ms(b.p99)} for ${Math.round(held / 1000)}s`;
      if (held >= t.latencyP99ForMs) critical.push(`${msg} (limit ${Math.round(t.latencyP99ForMs / 1000)}s)`);
      else degraded.push(msg);
    }
  }
  const next = { ...progress, p99BreachSince };
  if (critical.length) return act('critical', critical, next);
  if (degraded.length) return hold('degraded', degraded, next);
  return act('healthy', [...notes, `canary ${pct(c.errorRate)} errors, p95 ${c.p95 === null ? '-' : ms(c.p95)} vs baseline ${pct(b.errorRate)}, p95 ${b.p95 === null ? '-' : ms(b.p95)}: within thresholds`], next);

  function act(verdict: 'critical' | 'healthy', reasons: string[], p: CanaryProgress): Decision {
    if (p.paused) return { verdict, reasons: [...reasons, 'paused: no action taken'], actions: [], progress: p };
    if (verdict === 'critical') return { verdict, reasons, actions: [policy.autoRollback ? { type: 'rollback' } : { type: 'record_failure' }], progress: p };
    if (now - p.stepStartedAt < policy.stepDurationMs) return { verdict, reasons: [...reasons, `holding at ${p.weight}% until the step has lasted ${Math.round(policy.stepDurationMs / 1000)}s`], actions: [], progress: p };
    const weight = nextStep(policy, p.weight);
    if (weight !== null) return { verdict, reasons, actions: [{ type: 'advance', weight }], progress: { ...p, weight, stepStartedAt: now, p99BreachSince: null } };
    if (!policy.autoPromote) return { verdict, reasons: [...reasons, 'last step reached; autoPromote is off'], actions: [], progress: p };
    return { verdict, reasons, actions: [{ type: 'promote' }], progress: p };
  }
}

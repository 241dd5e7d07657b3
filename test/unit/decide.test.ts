import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, type CanaryProgress, type StatsInput } from '../../control-plane/rollout/decide.js';
import { resolvePolicy } from '../../control-plane/rollout/policy.js';
import type { VersionStats } from '../../proxy/telemetry/stats.js';

const policy = resolvePolicy({ interval: '30s', steps: [1, 10, 50, 100], minRequests: 100 });

function stats(version: string, requests: number, errorRate: number, p95 = 50, p99 = 80): VersionStats {
  const modelErrors = Math.round(requests * errorRate);
  return { deployment: 'm', version, from: 0, to: 0, requests, modelErrors, clientErrors: 0, errorRate: requests ? modelErrors / requests : 0, p50: 20, p95, p99 };
}
const pair = (c: Partial<{ n: number; err: number; p95: number; p99: number }> = {}, b: Partial<{ n: number; err: number; p95: number; p99: number }> = {}): StatsInput => ({
  baseline: stats('v1', b.n ?? 10_000, b.err ?? 0.01, b.p95, b.p99),
  canary: stats('v2', c.n ?? 1000, c.err ?? 0.01, c.p95, c.p99),
});
const start = (weight = 1, at = 0): CanaryProgress => ({ weight, stepStartedAt: at, paused: false, p99BreachSince: null });

/** Ticks a fake clock every interval, feeding `statsAt(progress)`, until an end action or the limit. */
function rollout(statsAt: (p: CanaryProgress, now: number) => StatsInput, p = policy, limit = 100) {
  let progress = start(p.steps[0]);
  const log: { now: number; verdict: string; actions: string[]; weight: number }[] = [];
  for (let i = 1; i <= limit; i++) {
    const now = i * p.intervalMs;
    const d = decide(progress, p, statsAt(progress, now), now);
    log.push({ now, verdict: d.verdict, actions: d.actions.map((a) => a.type), weight: d.progress.weight });
    progress = d.progress;
    if (d.actions.some((a) => a.type === 'promote' || a.type === 'rollback')) break;
  }
  return log;
}

test('a healthy canary walks 1 → 10 → 50 → 100 and is then promoted', () => {
  const log = rollout(() => pair());
  assert.deepEqual(log.map((l) => l.weight), [10, 50, 100, 100]);
  assert.deepEqual(log.at(-1)!.actions, ['promote']);
  assert.ok(log.every((l) => l.verdict === 'healthy'));
});

test('both error rates at 0 is healthy: the canary is promoted', () => {
  const log = rollout(() => pair({ err: 0 }, { err: 0 }));
  assert.deepEqual(log.at(-1)!.actions, ['promote']);
});

test('at 100% the baseline has no traffic: relative rules are skipped, absolute ones still apply', () => {
  const d = decide(start(100), policy, pair({ err: 0.01 }, { n: 0 }), 60_000);
  assert.equal(d.verdict, 'healthy');
  assert.match(d.reasons[0], /relative rules skipped/);
  const bad = decide(start(100), policy, pair({ err: 0.2 }, { n: 0 }), 60_000);
  assert.equal(bad.verdict, 'critical');
});

test("rolls back when the canary's error rate exceeds baseline by more than 5 points", () => {
  const d = decide(start(10), resolvePolicy({ thresholds: { errorRateMax: 1 } }), pair({ err: 0.07 }, { err: 0.01 }), 30_000);
  assert.equal(d.verdict, 'critical');
  assert.deepEqual(d.actions, [{ type: 'rollback' }]);
  assert.match(d.reasons.join(), /exceeds baseline/);
});

test('exactly +5 points is not critical (it is degraded: past half the limit)', () => {
  const p = resolvePolicy({ thresholds: { errorRateMax: 1 } });
  const d = decide(start(10), p, pair({ n: 1000, err: 0.06 }, { n: 1000, err: 0.01 }), 30_000);
  assert.equal(d.verdict, 'degraded');
  assert.deepEqual(d.actions, []);
});

test('rolls back when canary p95 exceeds baseline by more than 100 ms; exactly 100 ms is not critical', () => {
  assert.equal(decide(start(10), policy, pair({ p95: 151 }, { p95: 50 }), 30_000).verdict, 'critical');
  assert.equal(decide(start(10), policy, pair({ p95: 150 }, { p95: 50 }), 30_000).verdict, 'degraded');
});

test('an absolute canary error rate above 5% is critical at once, even with a bad baseline', () => {
  const d = decide(start(10), policy, pair({ err: 0.08 }, { err: 0.07 }), 30_000);
  assert.equal(d.verdict, 'critical');
  assert.match(d.reasons[0], /above the 5.00% maximum/);
});

test('p99 above 2× the baseline is degraded at first and critical once sustained for 5 minutes', () => {
  const slowTail = () => pair({ p99: 400 }, { p99: 100 });
  const log = rollout(slowTail);
  const firstCritical = log.findIndex((l) => l.verdict === 'critical');
  assert.ok(log.slice(0, firstCritical).every((l) => l.verdict === 'degraded'));
  // breach seen first at t=30 s; critical once 5 minutes have passed since then
  assert.equal(log[firstCritical].now - log[0].now, 5 * 60_000);
  assert.deepEqual(log[firstCritical].actions, ['rollback']);
});

test('a p99 breach that clears resets the clock', () => {
  let p = start(10);
  p = decide(p, policy, pair({ p99: 400 }, { p99: 100 }), 30_000).progress;
  assert.equal(p.p99BreachSince, 30_000);
  p = decide(p, policy, pair({ p99: 150 }, { p99: 100 }), 60_000).progress;
  assert.equal(p.p99BreachSince, null);
});

test('degraded holds the weight', () => {
  const log = rollout(() => pair({ err: 0.045 }, { err: 0.01 }), policy, 10);
  assert.ok(log.every((l) => l.verdict === 'degraded' && l.weight === 1 && l.actions.length === 0));
});

test('too few canary requests is inconclusive: no promotion, no rollback', () => {
  const d = decide(start(1), policy, pair({ n: 99, err: 0.04 }), 30_000);
  assert.equal(d.verdict, 'inconclusive');
  assert.deepEqual(d.actions, []);
});

test('with few requests only the absolute rule rolls back, and only from 20 requests on', () => {
  assert.equal(decide(start(1), policy, pair({ n: 19, err: 0.5 }), 30_000).verdict, 'inconclusive');
  const d = decide(start(1), policy, pair({ n: 20, err: 0.5 }), 30_000);
  assert.equal(d.verdict, 'critical');
  assert.deepEqual(d.actions, [{ type: 'rollback' }]);
});

test('a metrics outage is an error verdict that holds, however long it lasts', () => {
  const log = rollout(() => ({ error: 'redis down' }), policy, 20);
  assert.ok(log.every((l) => l.verdict === 'error' && l.actions.length === 0 && l.weight === 1));
});

test('paused: measured and judged, never acted on', () => {
  const paused = { ...start(10), paused: true };
  const crit = decide(paused, policy, pair({ err: 0.5 }), 30_000);
  assert.equal(crit.verdict, 'critical');
  assert.deepEqual(crit.actions, []);
  const ok = decide(paused, policy, pair(), 30_000);
  assert.equal(ok.verdict, 'healthy');
  assert.deepEqual(ok.actions, []);
});

test('autoRollback off: a critical verdict is only recorded', () => {
  const d = decide(start(10), resolvePolicy({ autoRollback: false }), pair({ err: 0.5 }), 30_000);
  assert.deepEqual(d.actions, [{ type: 'record_failure' }]);
});

test('autoPromote off: the canary stays at the last step', () => {
  const d = decide(start(100), resolvePolicy({ autoPromote: false }), pair(), 30_000);
  assert.equal(d.verdict, 'healthy');
  assert.deepEqual(d.actions, []);
});

test('a step is held until stepDuration has passed', () => {
  const p = resolvePolicy({ interval: '10s', stepDuration: '1m' });
  assert.deepEqual(decide(start(1, 0), p, pair(), 30_000).actions, []);
  assert.deepEqual(decide(start(1, 0), p, pair(), 60_000).actions, [{ type: 'advance', weight: 10 }]);
});

test('a canary started between steps advances to the next step above its weight', () => {
  assert.deepEqual(decide(start(20), policy, pair(), 30_000).actions, [{ type: 'advance', weight: 50 }]);
});

test('policies are validated with messages naming the field', () => {
  assert.throws(() => resolvePolicy({ steps: [10, 5] }), /steps: must increase/);
  assert.throws(() => resolvePolicy({ interval: 'soon' }), /interval/);
  assert.throws(() => resolvePolicy({ thresholds: { errorRateDelta: 2 } }), /errorRateDelta/);
  assert.throws(() => resolvePolicy({ bogus: 1 }), /bogus: unknown field/);
  assert.equal(resolvePolicy({ interval: '2s' }).stepDurationMs, 2000, 'stepDuration defaults to the interval');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePolicy } from '../../control-plane/model/policy.js';
import type { CanaryProgress, StatsInput } from '../../control-plane/model/progress.js';
import type { Decision } from '../../control-plane/model/verdict.js';
import { decide, foldStep, grossFailure } from '../../control-plane/rollout/decide.js';
import { ALPHA_SHARES, STREAM_ALPHA_SHARES } from '../../control-plane/rollout/evidence/budget.js';
import { autoStartWeight } from '../../control-plane/rollout/sizing.js';
import { addValue, type Buckets } from '../../proxy/contract/histogram.js';
import { summarize, type VersionStats } from '../../proxy/contract/stats.js';

const policy = resolvePolicy({ interval: '30s', steps: [1, 10, 50, 100], minRequests: 100 });

/** Latency shapes as [ms, share of requests]: TYPICAL has p95 ≈ 45 ms and p99 ≈ 60 ms. */
type Shape = [number, number][];
const TYPICAL: Shape = [
  [20, 0.9],
  [45, 0.06],
  [60, 0.035],
  [70, 0.005],
];
const shifted = (by: number): Shape => TYPICAL.map(([ms, s]) => [ms + by, s]);
/** Same body, but 3% of requests at 3.5× the baseline's p99. */
const SLOW_TAIL: Shape = [
  [20, 0.9],
  [45, 0.06],
  [60, 0.01],
  [210, 0.03],
];

function stats(version: string, n: number, errors: number, shape: Shape = TYPICAL): VersionStats {
  const h: Buckets = new Map();
  let left = n;
  shape.forEach(([ms, share], i) => {
    const c = i === shape.length - 1 ? left : Math.round(n * share);
    left -= c;
    if (c > 0) addValue(h, ms, c);
  });
  return summarize('m', version, 0, 0, n, errors, 0, h);
}

interface Side {
  n?: number;
  err?: number;
  errors?: number;
  shape?: Shape;
}
const count = (s: Side, dn: number) => s.errors ?? Math.round((s.n ?? dn) * (s.err ?? 0.01));
const pair = (c: Side = {}, b: Side = {}): StatsInput => ({
  canary: stats('v2', c.n ?? 2000, count(c, 2000), c.shape),
  baseline: stats('v1', b.n ?? 20_000, count(b, 20_000), b.shape),
});
const start = (weight = 1, at = 0): CanaryProgress => ({
  weight,
  stepStartedAt: at,
  paused: false,
  p99BreachSince: null,
});
const rule = (d: Decision, name: string) => d.rules.find((r) => r.rule === name)!;

/** Ticks a fake clock every interval, feeding `statsAt(progress, now)` (the current step's stats), until an end action. */
function rollout(statsAt: (p: CanaryProgress, now: number) => StatsInput, p = policy, limit = 100) {
  let progress = start(p.steps[0]);
  const log: { now: number; verdict: string; actions: string[]; weight: number; d: Decision }[] = [];
  for (let i = 1; i <= limit; i++) {
    const now = i * p.intervalMs;
    const d = decide(progress, p, statsAt(progress, now), now);
    log.push({ now, verdict: d.verdict, actions: d.actions.map((a) => a.type), weight: d.progress.weight, d });
    progress = d.progress;
    if (d.actions.some((a) => a.type === 'promote' || a.type === 'rollback')) break;
  }
  return log;
}

test('a clean canary with enough traffic walks 1 → 10 → 50 → 100 and is then promoted', () => {
  const log = rollout(() => pair());
  assert.deepEqual(
    log.map((l) => l.weight),
    [10, 50, 100, 100],
  );
  assert.deepEqual(log.at(-1)!.actions, ['promote']);
  assert.ok(log.every((l) => l.verdict === 'healthy'));
});

test('both error rates at 0 is healthy: the canary is promoted', () => {
  const log = rollout(() => pair({ err: 0 }, { err: 0 }));
  assert.deepEqual(log.at(-1)!.actions, ['promote']);
});

test('advancing needs evidence, not a request count: 150 clean requests are inconclusive and say what is still needed', () => {
  const d = decide(start(1), policy, pair({ n: 150, errors: 1 }), 30_000);
  assert.equal(d.verdict, 'inconclusive');
  assert.deepEqual(d.actions, []);
  assert.ok(d.needs && d.needs.requests! > 0 && d.needs.seconds! > 0, JSON.stringify(d.needs));
  assert.match(d.reasons.join('\n'), /needs ≈ \d+ more canary requests/);
});

test('+5 points over the baseline is critical through the relative rule, with its evidence', () => {
  const d = decide(
    start(10),
    resolvePolicy({ thresholds: { errorRateMax: 1 } }),
    pair({ err: 0.06 }, { err: 0.01 }),
    30_000,
  );
  assert.equal(d.verdict, 'critical');
  assert.deepEqual(d.actions, [{ type: 'rollback' }]);
  const r = rule(d, 'error_rate_delta');
  assert.equal(r.status, 'fail');
  assert.ok(r.pValue <= r.alpha && r.eValue >= 1 / r.alpha);
  assert.equal(r.canary!.n, 2000);
  assert.equal(r.baseline!.n, 20_000);
  assert.ok(r.canary!.low! <= 0.06 && r.canary!.high! >= 0.06);
});

test('no request floor on gross failure: 3 failures in 3 requests is critical; 1 in 2 is not', () => {
  assert.equal(decide(start(1), policy, pair({ n: 3, errors: 3 }), 30_000).verdict, 'critical');
  assert.notEqual(decide(start(1), policy, pair({ n: 2, errors: 1 }), 30_000).verdict, 'critical');
});

test('a point estimate above 5% on a few requests is not a rollback (the old absolute rule was)', () => {
  const d = decide(start(1), policy, pair({ n: 60, errors: 4 }, { err: 0.045 }), 30_000); // 6.7%
  assert.notEqual(d.verdict, 'critical');
  assert.equal(rule(d, 'error_rate_max').status, 'pending');
});

test('p95 150 ms over the baseline is critical; 30 ms over passes', () => {
  const slow = decide(start(10), policy, pair({ shape: shifted(150) }), 30_000);
  assert.equal(slow.verdict, 'critical');
  assert.equal(rule(slow, 'latency_p95').status, 'fail');
  const ok = decide(start(10), policy, pair({ shape: shifted(30) }), 30_000);
  assert.equal(rule(ok, 'latency_p95').status, 'pass');
});

test('latency limits come from the baseline before the step when it has enough requests, and stay fixed for the step', () => {
  const reference = stats('v1', 5000, 50, shifted(100)); // the baseline used to be 100 ms slower
  const holding = resolvePolicy({ stepDuration: '10m' });
  const d = decide(start(10), holding, { ...pair(), reference }, 30_000);
  assert.ok(Math.abs(d.progress.limits!.baselineP95Ms - 145) < 3, JSON.stringify(d.progress.limits));
  const later = decide(d.progress, holding, pair(), 60_000);
  assert.deepEqual(later.progress.limits, d.progress.limits);
});

test('p99 over 2× the baseline holds (degraded) first, rolls back once sustained 5 minutes, and a step advance does not reset it', () => {
  const log = rollout(() => pair({ shape: SLOW_TAIL }));
  const firstWarn = log.findIndex((l) => l.verdict === 'degraded');
  const firstCritical = log.findIndex((l) => l.verdict === 'critical');
  assert.ok(firstWarn >= 0 && firstCritical > firstWarn);
  assert.ok(
    log
      .slice(firstWarn, firstCritical)
      .every((l) => l.verdict === 'degraded' && l.actions.length === 0 && l.weight === 1),
  );
  assert.equal(log[firstCritical].now - log[firstWarn].now, 5 * 60_000);
  assert.deepEqual(log[firstCritical].actions, ['rollback']);
  // Once the test has rejected, a look that does not yet show p99 within its limit keeps the clock…
  const breached = log[firstWarn].d.progress;
  const unsure = decide(breached, policy, pair({ n: 150 }), log[firstWarn].now + 30_000);
  assert.notEqual(rule(unsure, 'latency_p99').status, 'pass', rule(unsure, 'latency_p99').summary);
  assert.equal(unsure.progress.p99BreachSince, breached.p99BreachSince);
  assert.equal(unsure.verdict, 'degraded');
  // …and one that shows it (the step's evidence, clean traffic after a blip) ends the breach: no latch.
  const recovered = decide(breached, policy, pair({ n: 20_000 }), log[firstWarn].now + 60_000);
  assert.equal(rule(recovered, 'latency_p99').status, 'pass', rule(recovered, 'latency_p99').summary);
  assert.equal(recovered.progress.p99BreachSince, null);
  assert.match(rule(recovered, 'latency_p99').summary, /has recovered/);
  assert.notEqual(recovered.verdict, 'degraded');
});

test('evidence accumulates across steps: two steps that are each too short to judge are judged together', () => {
  const p = resolvePolicy({ thresholds: { errorRateMax: 1 } });
  const step = pair({ n: 300, errors: 12 }, { n: 3000, errors: 30 }); // 4% vs 1%
  assert.notEqual(decide(start(10), p, step, 30_000).verdict, 'critical');
  // The first step, finished, becomes a stratum; the second adds to it.
  let progress = decide(start(10), p, step, 30_000).progress;
  progress = foldStep(progress, 20, 30_000);
  const d = decide(progress, p, step, 60_000);
  assert.equal(progress.strata!.length, 1);
  assert.equal(rule(d, 'error_rate_delta').canary!.n, 600);
  assert.equal(d.verdict, 'critical');
});

test('the fast path sees the same gross failure the analysis does', () => {
  const canary = stats('v2', 5, 5);
  assert.equal(grossFailure(start(1), policy, { canary, baseline: stats('v1', 0, 0) }).status, 'fail');
  assert.equal(grossFailure(start(1), policy, { canary, baseline: stats('v1', 500, 0) }).status, 'fail');
  assert.equal(decide(start(1), policy, pair({ n: 5, errors: 5 }), 5000).verdict, 'critical');
  assert.equal(
    grossFailure(start(1), policy, { canary: stats('v2', 40, 1), baseline: stats('v1', 0, 0) }).status,
    'pending',
  );
});

test("a fault both versions share over the same step is not the canary's: neither the fast path nor the analysis rolls back", () => {
  // The first second of a step during an outage of a dependency both use: 6/10 vs 594/990.
  const step = { canary: stats('v2', 10, 6), baseline: stats('v1', 990, 594) };
  assert.notEqual(grossFailure(start(1), policy, step).status, 'fail');
  const d = decide(start(1), policy, pair({ n: 10, errors: 6 }, { n: 990, errors: 594 }), 2000);
  assert.notEqual(d.verdict, 'critical');
  assert.match(
    rule(d, 'error_rate_max').summary,
    /so is the baseline \(60\.00%\) over the same steps: a fault both versions share/,
  );
  // A canary failing alone beside it is still rolled back at once.
  const alone = decide(start(1), policy, pair({ n: 10, errors: 6 }, { n: 990, errors: 5 }), 2000);
  assert.equal(alone.verdict, 'critical');
  // At 100% no baseline serves beside it: the canary's own failures decide, less those its
  // retries on the baseline reproduced.
  const full = decide(start(100), policy, pair({ n: 1000, errors: 600 }, { n: 0, errors: 0 }), 2000);
  assert.equal(full.verdict, 'critical');
  const outage = { canary: { ...stats('v2', 1000, 600), retryFailed: 595 }, baseline: stats('v1', 0, 0) };
  const held = decide(start(100), policy, outage, 2000);
  assert.notEqual(held.verdict, 'critical');
  assert.match(
    rule(held, 'error_rate_max').summary,
    /less the 595 failures its retries on the baseline reproduced, 0\.50% \(5\/1000/,
  );
  assert.notEqual(
    grossFailure(start(100), policy, { canary: outage.canary, baseline: stats('v1', 0, 0) }).status,
    'fail',
  );
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

const LIMITS = { p95Ms: 145, p99Ms: 140, baselineP95Ms: 45, baselineP99Ms: 70 };

test('autoPromote off: the canary stays at the last step', () => {
  const d = decide(
    { ...start(100), limits: LIMITS },
    resolvePolicy({ autoPromote: false }),
    pair({}, { n: 0 }),
    30_000,
  );
  assert.equal(d.verdict, 'healthy');
  assert.deepEqual(d.actions, []);
});

test('at 100% with no baseline traffic the relative rule is skipped and the absolute ones still apply', () => {
  const p = { ...start(100), limits: LIMITS };
  const d = decide(p, policy, pair({}, { n: 0 }), 60_000);
  assert.equal(rule(d, 'error_rate_delta').status, 'skipped');
  assert.equal(d.verdict, 'healthy');
  assert.equal(decide(p, policy, pair({ err: 0.2 }, { n: 0 }), 60_000).verdict, 'critical');
  // a few late baseline requests do not make latency comparable at 100%
  assert.equal(rule(decide(p, policy, pair({}, { n: 30 }), 60_000), 'latency_p95').status, 'skipped');
});

test('at 100% a trickle of baseline requests (stats flushed late, routes a moment stale) does not make latency comparable: the canary now carries the whole load', () => {
  // Earlier steps passed on latency; at 100% the canary is slower (it serves everything) and a
  // few late baseline requests arrive in the step's window. That is not a concurrent comparison.
  const earlier = {
    weight: 50,
    from: 0,
    to: 60_000,
    limits: LIMITS,
    canary: { n: 5000, errors: 50, slow95: 100, slow99: 5 },
    baseline: { n: 5000, errors: 50, slow95: 100, slow99: 5 },
  };
  const p: CanaryProgress = { ...start(100, 60_000), limits: LIMITS, strata: [earlier] };
  const slowUnderFullLoad = pair(
    {
      n: 5000,
      shape: [
        [20, 0.9],
        [45, 0.06],
        [60, 0.02],
        [150, 0.02],
      ],
    },
    { n: 40 },
  );
  const d = decide(p, policy, slowUnderFullLoad, 120_000);
  assert.equal(rule(d, 'latency_p99').status, 'pass');
  assert.equal(rule(d, 'latency_p99').canary!.n, 5000, 'only the 50% step is latency evidence');
  assert.deepEqual(
    d.actions.map((a) => a.type),
    ['promote'],
  );
});

test('a step is held until stepDuration has passed', () => {
  const p = resolvePolicy({ interval: '10s', stepDuration: '1m' });
  assert.deepEqual(decide(start(1, 0), p, pair(), 30_000).actions, []);
  assert.deepEqual(decide(start(1, 0), p, pair(), 60_000).actions, [{ type: 'advance', weight: 10 }]);
});

test('a canary started between steps advances to the next step above its weight', () => {
  assert.deepEqual(decide(start(20), policy, pair(), 30_000).actions, [{ type: 'advance', weight: 50 }]);
});

test('a step that cannot decide within maxStepDuration says so and advises a larger weight', () => {
  // 1% of 2 rps: 0.02 canary requests a second.
  const d = decide(start(1), policy, pair({ n: 6, errors: 0 }, { n: 594, errors: 6 }), 300_000);
  assert.equal(d.verdict, 'inconclusive');
  assert.match(
    d.needs!.advice!,
    /at 1% of 2\.0 rps this step needs ≈ .* more to decide, past maxStepDuration 30 min; start at (10|50)%/,
  );
});

/** 1.7% of requests past 2× the baseline's p99 (2% of them 8× slower, as a tail-only regression puts them). */
const TAIL_ONLY: Shape = [
  [20, 0.9],
  [45, 0.06],
  [60, 0.023],
  [210, 0.017],
];

test('a p99 not decided yet does not hold the first steps (a tail needs their traffic), but holds 50% and promotion', () => {
  // At 1% the p99 test cannot tell 1.7% from the allowed 1% on a few hundred requests: the ramp goes on.
  const early = decide(start(1), policy, pair({ n: 400, shape: TAIL_ONLY }), 60_000);
  assert.notEqual(rule(early, 'latency_p99').status, 'pass');
  assert.notEqual(rule(early, 'latency_p99').status, 'fail');
  assert.equal(early.verdict, 'healthy', early.reasons.join('; '));
  assert.deepEqual(early.actions, [{ type: 'advance', weight: 10 }]);
  assert.match(early.reasons.join(' '), /latency_p99 not decided yet.*not ramped to 50% or promoted until p99 passes/);
  // At 10% the next step is 50%: an undecided p99 holds there…
  const at10 = decide(start(10), policy, pair({ n: 400, shape: TAIL_ONLY }), 60_000);
  assert.deepEqual(at10.actions, []);
  assert.ok(['inconclusive', 'degraded'].includes(at10.verdict), at10.verdict);
  // …until the traffic it gets there decides it: the regression is rejected and rolled back once sustained.
  const log = rollout(() => pair({ n: 20_000, shape: TAIL_ONLY }), resolvePolicy({ steps: [10, 50, 100] }));
  assert.ok(log.every((l) => l.weight === 10));
  assert.deepEqual(log[log.length - 1].actions, ['rollback']);
  // A breach (the test rejected) holds at any step, as ever.
  const breached = decide({ ...start(1), p99BreachSince: 0 }, policy, pair({ n: 400, shape: TAIL_ONLY }), 60_000);
  assert.deepEqual(breached.actions, []);
});

test('steps "auto" starts where a clean canary can decide within ten intervals', () => {
  const p = resolvePolicy({ steps: 'auto' });
  const baselineAt = (rps: number) => stats('v1', rps * 300, rps * 3);
  assert.equal(autoStartWeight(p, baselineAt(1000), 300_000), 1);
  assert.equal(autoStartWeight(p, baselineAt(100), 300_000), 10);
  assert.equal(autoStartWeight(p, baselineAt(10), 300_000), 50);
  assert.equal(autoStartWeight(p, null, 0), 1);
  assert.deepEqual(p.steps, [1, 10, 50, 100]);
});

test('explain: false (the simulation) decides exactly as the API does', () => {
  const cases = [
    pair(),
    pair({ n: 150, errors: 1 }),
    pair({ err: 0.06 }),
    pair({ shape: SLOW_TAIL }),
    pair({ n: 3, errors: 3 }),
  ];
  for (const s of cases) {
    const a = decide(start(10), policy, s, 30_000),
      b = decide(start(10), policy, s, 30_000, { explain: false });
    assert.equal(a.verdict, b.verdict);
    assert.deepEqual(a.actions, b.actions);
    assert.deepEqual(
      a.rules.map((r) => r.status),
      b.rules.map((r) => r.status),
    );
  }
});

test('the false-rollback budget is split across the rules and sums to it, with and without the stream rules', () => {
  for (const shares of [ALPHA_SHARES, STREAM_ALPHA_SHARES]) {
    const total = Object.values(shares).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 1) < 1e-12);
  }
  const d = decide(start(10), resolvePolicy({ falseRollbackRate: 0.02 }), pair(), 30_000);
  assert.equal(rule(d, 'error_rate_max').alpha, 0.02 * ALPHA_SHARES.error_rate_max);
});

test('policies are validated with messages naming the field', () => {
  assert.throws(() => resolvePolicy({ steps: [10, 5] }), /steps: must increase/);
  assert.throws(() => resolvePolicy({ steps: 'sometimes' }), /steps: expected "auto"/);
  assert.throws(() => resolvePolicy({ interval: 'soon' }), /interval/);
  assert.throws(() => resolvePolicy({ thresholds: { errorRateDelta: 2 } }), /errorRateDelta/);
  assert.throws(() => resolvePolicy({ falseRollbackRate: 0.5 }), /falseRollbackRate/);
  assert.throws(() => resolvePolicy({ thresholds: { latencyP95Ratio: 0.5 } }), /latencyP95Ratio/);
  assert.throws(() => resolvePolicy({ bogus: 1 }), /bogus: unknown field/);
  assert.equal(resolvePolicy({ interval: '2s' }).stepDurationMs, 2000, 'stepDuration defaults to the interval');
  assert.equal(resolvePolicy({ maxStepDuration: '10m' }).maxStepDurationMs, 600_000);
  assert.throws(() => resolvePolicy({ warmup: 'soon' }), /policy\.warmup: expected null or \{duration, requests\}/);
  assert.throws(() => resolvePolicy({ warmup: { duration: 'soon' } }), /policy\.warmup\.duration/);
  assert.throws(
    () => resolvePolicy({ warmup: { requests: 2.5 } }),
    /policy\.warmup\.requests: expected a whole number/,
  );
  assert.throws(() => resolvePolicy({ warmup: { requests: -1 } }), /policy\.warmup\.requests/);
  assert.throws(() => resolvePolicy({ warmup: { seconds: 3 } }), /policy\.warmup\.seconds: unknown field/);
  assert.deepEqual(resolvePolicy({}).warmup, { durationMs: 20_000, requests: 10 }, 'on by default');
  assert.deepEqual(resolvePolicy({ warmup: { duration: '1m' } }).warmup, { durationMs: 60_000, requests: 10 });
  assert.equal(resolvePolicy({ warmup: null }).warmup, null);
});

test('a cold canary: while it warms up its latency is not judged but its errors are; after it, only the traffic past the warm-up counts for latency', () => {
  // 400 ms slower over the whole step so far (its first seconds were cold): while warming, pending and saying why.
  const cold = { ...pair({ shape: shifted(400) }), latency: null, warmedAt: null };
  const warming = decide(start(), policy, cold, 30_000);
  assert.equal(rule(warming, 'latency_p95').status, 'pending');
  assert.match(
    rule(warming, 'latency_p95').summary,
    /warming up \(policy\.warmup: 20 s after it started and 10 requests\)/,
  );
  assert.notEqual(warming.verdict, 'critical');
  // Errors are judged from the first request.
  const failing = decide(start(), policy, { ...pair({ err: 0.5 }), latency: null, warmedAt: null }, 30_000);
  assert.equal(failing.verdict, 'critical');
  // Warm now: the latency rules read the step past the warm-up (clean), not the cold start.
  const sides = (x: StatsInput) => x as { baseline: VersionStats; canary: VersionStats };
  const warmed = decide(
    start(),
    policy,
    { ...pair({ shape: shifted(400) }), latency: sides(pair()), warmedAt: 20_000 },
    60_000,
  );
  assert.notEqual(rule(warmed, 'latency_p95').status, 'fail');
  assert.notEqual(warmed.verdict, 'critical');
  assert.equal(warmed.progress.warmedAt, 20_000, 'the end of the warm-up is kept');
  // A canary that stays slow after its warm-up is still rolled back.
  const slow = pair({ shape: shifted(400) });
  const staysSlow = decide(start(), policy, { ...slow, latency: sides(slow), warmedAt: 20_000 }, 60_000);
  assert.equal(rule(staysSlow, 'latency_p95').status, 'fail');
  assert.equal(staysSlow.verdict, 'critical');
});

test("a slowdown of the whole machine, which the baseline feels too, is not the canary's fault (latency is judged against the baseline's own share)", () => {
  const p = resolvePolicy({ stepDuration: '1h' });
  // Limits fixed from a calm baseline; then both variants get the same heavy tail.
  const calm = decide({ ...start(10) }, p, { ...pair(), reference: stats('v1', 5000, 50) }, 30_000).progress;
  const both = pair({ shape: SLOW_TAIL, n: 5000 }, { shape: SLOW_TAIL, n: 45_000 });
  const d = decide(calm, p, both, 60_000);
  assert.notEqual(rule(d, 'latency_p99').status, 'fail');
  assert.notEqual(d.verdict, 'critical');
  // With enough of both, "no more than 1 point above the baseline's own share" is shown.
  const more = decide(calm, p, pair({ shape: SLOW_TAIL, n: 40_000 }, { shape: SLOW_TAIL, n: 360_000 }), 60_000);
  assert.equal(rule(more, 'latency_p99').status, 'pass', rule(more, 'latency_p99').summary);
  // The canary alone with that tail is rolled back (once sustained) as before.
  assert.equal(
    rule(decide(calm, p, pair({ shape: SLOW_TAIL, n: 5000 }, { n: 45_000 }), 60_000), 'latency_p99').status,
    'warn',
  );
});

test('streams: the tpot limit is fixed from the baseline during the step when the step began before any stream, and a 1.5× slower token rate rolls back', async () => {
  const { noStreams, recordStream } = await import('../../proxy/contract/stream-stats.js');
  const streamed = (version: string, n: number, tpotMs: number) => {
    const c = noStreams();
    for (let i = 0; i < n; i++)
      recordStream(c, {
        end: 'complete',
        ttftMs: 100,
        tpotMs: tpotMs * (0.9 + (0.2 * i) / n),
        outputTokens: 50,
        tokensEstimated: false,
        promptTokens: 10,
        decodeMs: tpotMs * 49,
      });
    const h: Buckets = new Map();
    addValue(h, 100, n);
    return summarize('m', version, 0, 0, n, 0, 0, h, { streams: c });
  };
  // Latency limits fixed earlier, from plain requests: no tpot limit yet, and no reference now.
  const fixed = decide(start(50), policy, pair(), 30_000).progress.limits!;
  assert.equal(fixed.tpotMs ?? null, null);
  const d = decide(
    { ...start(50), limits: fixed },
    policy,
    {
      baseline: streamed('v1', 400, 20),
      canary: streamed('v2', 400, 30),
      reference: null,
    },
    60_000,
  );
  assert.ok(d.progress.limits?.tpotMs, 'the tpot limit is filled in from the baseline during the step');
  assert.equal(Math.round(d.progress.limits!.baselineTpotMs!), 20);
  assert.equal(rule(d, 'tpot').status, 'fail', rule(d, 'tpot').summary);
  assert.equal(d.verdict, 'critical');
  // The same token rate passes.
  const same = decide(
    { ...start(50), limits: fixed },
    policy,
    {
      baseline: streamed('v1', 400, 20),
      canary: streamed('v2', 400, 20),
      reference: null,
    },
    60_000,
  );
  assert.equal(rule(same, 'tpot').status, 'pass', rule(same, 'tpot').summary);
});

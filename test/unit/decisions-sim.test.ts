import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LLM, llm, NARROW, P99_3X, runCase, type SimCase, TYPICAL } from '../../bench/sim/rollouts.js';

/**
 * A reduced, seeded run of `npm run sim` (the same harness and the real decide()): fewer
 * rollouts per case, the targets asserted, so a change that degrades decision quality
 * fails CI. Seeded, so every run of this test sees the same rollouts.
 */
const v = (errorRate: number, latency = TYPICAL) => ({ errorRate, latency });
const run = (c: SimCase, runs: number) => runCase(c, runs, 7);
const share = (n: number, of: number) => `${n}/${of}`;

test('A/A: a canary as good as the baseline is almost never rolled back (≤ 1%) and is promoted within 15 min at 100 rps', () => {
  const { results } = run({ name: 'A/A 1%', rps: 100, baseline: v(0.01), canary: v(0.01) }, 300);
  const rolledBack = results.filter((r) => r.outcome === 'rollback').length;
  const promptly = results.filter((r) => r.outcome === 'promote' && r.atS <= 15 * 60).length;
  assert.ok(rolledBack <= 3, `false rollbacks ${share(rolledBack, 300)}`);
  assert.ok(promptly >= 0.95 * 300, `promoted within 15 min ${share(promptly, 300)}`);
});

test('A/A at low traffic and a higher error rate: still ≤ 1% false rollbacks over a whole hour of looks', () => {
  const { results } = run({ name: 'A/A 2% 10 rps', rps: 10, baseline: v(0.02), canary: v(0.02) }, 300);
  const rolledBack = results.filter((r) => r.outcome === 'rollback').length;
  assert.ok(rolledBack <= 3, `false rollbacks ${share(rolledBack, 300)}`);
});

test('steps "auto" at 10 rps: a clean canary is promoted within 60 min in ≥ 95% of rollouts', () => {
  const { results } = run(
    { name: 'auto 10 rps', rps: 10, baseline: v(0.01), canary: v(0.01), policy: { steps: 'auto' } },
    300,
  );
  const promoted = results.filter((r) => r.outcome === 'promote').length;
  assert.ok(promoted >= 0.95 * 300, `promoted ${share(promoted, 300)}`);
});

test('+5 points (1% → 6%) at 100 rps: rolled back ≥ 99%, before the canary passes 10%; never promoted', () => {
  const { results } = run({ name: '+5', rps: 100, baseline: v(0.01), canary: v(0.06) }, 200);
  const early = results.filter((r) => r.outcome === 'rollback' && r.weightAtEnd < 10).length;
  assert.ok(early >= 0.99 * 200, `rolled back below 10% ${share(early, 200)}`);
  assert.equal(results.filter((r) => r.outcome === 'promote').length, 0);
});

test('+5 points (0.1% → 5.1%) at 10 rps: never promoted', () => {
  const { results } = run({ name: '+5 low', rps: 10, baseline: v(0.001), canary: v(0.051) }, 200);
  assert.equal(results.filter((r) => r.outcome === 'promote').length, 0);
});

test('50% gross failure at 1000 rps: always rolled back, within 5 s', () => {
  const { results } = run({ name: 'gross', rps: 1000, baseline: v(0.01), canary: v(0.5) }, 100);
  assert.ok(results.every((r) => r.outcome === 'rollback'));
  const slowest = Math.max(...results.map((r) => r.atS));
  assert.ok(slowest <= 5, `slowest rollback after ${slowest} s`);
});

test('p95 +150 ms at 100 rps: rolled back within two intervals', () => {
  const { results } = run(
    { name: 'p95', rps: 100, baseline: v(0.01), canary: v(0.01, { ...TYPICAL, shiftMs: 150 }) },
    200,
  );
  assert.ok(
    results.every((r) => r.outcome === 'rollback' && r.atS <= 60),
    `slowest ${Math.max(...results.map((r) => r.atS))} s`,
  );
});

test('p99 3× the baseline: rolled back ≥ 99%, before the canary reaches 50%', () => {
  const { results } = run({ name: 'p99', rps: 100, baseline: v(0.01), canary: v(0.01, P99_3X) }, 100);
  const ok = results.filter((r) => r.outcome === 'rollback' && r.weightAtEnd < 50).length;
  assert.ok(ok >= 99, `rolled back below 50% ${share(ok, 100)}`);
});

test('a tail-only regression (2% of requests 8× slower: p99 3×, p95 barely moved) at 100 rps: rolled back ≥ 95% within 30 min, never promoted', () => {
  const { results } = run(
    {
      name: 'tail-only',
      rps: 100,
      baseline: v(0.01, NARROW),
      canary: v(0.01, { ...NARROW, tailP: 0.02, tailFactor: 8 }),
    },
    60,
  );
  const inTime = results.filter((r) => r.outcome === 'rollback' && r.atS <= 30 * 60).length;
  assert.ok(inTime >= 57, `rolled back within 30 min ${share(inTime, 60)}`);
  assert.equal(results.filter((r) => r.outcome === 'promote').length, 0);
});

test('0.1% → 0.5% (5×) at 1000 rps: rolled back ≥ 90%', () => {
  const { results } = run({ name: '5x', rps: 1000, baseline: v(0.001), canary: v(0.005) }, 100);
  const rolledBack = results.filter((r) => r.outcome === 'rollback').length;
  assert.ok(rolledBack >= 90, `rolled back ${share(rolledBack, 100)}`);
});

test('streams: answer length is not latency — A/A with 10–500-token answers and a canary writing 2.5× longer answers at the same speed are not rolled back (≤ 1%)', () => {
  const aa = run({ name: 'streams A/A', rps: 100, baseline: llm(0.01), canary: llm(0.01) }, 200).results;
  const aaBack = aa.filter((r) => r.outcome === 'rollback').length;
  assert.ok(aaBack <= 2, `A/A false rollbacks ${share(aaBack, 200)}`);
  assert.ok(aa.filter((r) => r.outcome === 'promote').length >= 190, 'A/A streams promoted');
  const longer = run(
    { name: 'longer', rps: 10, baseline: llm(0.01), canary: llm(0.01, { lengthScale: 2.5 }), horizonS: 1200 },
    100,
  ).results;
  const longBack = longer.filter((r) => r.outcome === 'rollback').length;
  assert.ok(longBack <= 1, `longer answers rolled back ${share(longBack, 100)}`);
});

test('streams at 10 streams/s: a first token 200 ms late is caught ≥ 99% (by the first-token rule), tokens 1.5× slower ≥ 95% (by tpot)', () => {
  const late = run(
    { name: 'ttft', rps: 10, baseline: llm(0.01), canary: llm(0.01, { ttft: { ...LLM.ttft, shiftMs: 200 } }) },
    100,
  ).results;
  const caught = late.filter((r) => r.outcome === 'rollback' && r.failedRules.includes('latency_p95')).length;
  assert.ok(caught >= 99, `TTFT +200 ms caught ${share(caught, 100)}`);
  const slow = run(
    { name: 'tpot', rps: 10, baseline: llm(0.01), canary: llm(0.01, { tpot: { ...LLM.tpot, medianMs: 30 } }) },
    100,
  ).results;
  const slowCaught = slow.filter((r) => r.outcome === 'rollback' && r.failedRules.includes('tpot')).length;
  assert.ok(slowCaught >= 95, `TPOT 1.5× caught ${share(slowCaught, 100)}`);
});

test("faults both versions share, with the proxy's trip replayed: a shared outage (1.5 s every 10 s) and 1-s error bursts roll back no healthy canary (≤ 1%); a +5-point canary beside rarer outages (2 s a minute) is still caught", () => {
  const outage = { everyS: 10, forS: 1.5, errorRate: 1 };
  const bursts = { everyS: 60, forS: 1, errorRate: 0.6 };
  for (const c of [
    { name: 'outage', rps: 100, baseline: v(0.01), canary: v(0.01), shared: outage },
    { name: 'bursts', rps: 1000, baseline: v(0), canary: v(0), shared: bursts },
  ]) {
    const { results } = run(c, 60);
    const rolledBack = results.filter((r) => r.outcome === 'rollback');
    assert.ok(rolledBack.length <= 1, `${c.name}: false rollbacks ${share(rolledBack.length, 60)}`);
  }
  const rare = { everyS: 60, forS: 2, errorRate: 1 };
  const { results } = run({ name: '+5, outages', rps: 100, baseline: v(0.01), canary: v(0.06), shared: rare }, 50);
  const caught = results.filter((r) => r.outcome === 'rollback').length;
  assert.ok(caught >= 49, `caught ${share(caught, 50)}`);
});

test('identical heavy-tailed models (lognormal σ 1.5), hedged as the proxy hedges them: never rolled back for being hedged (≤ 1%)', () => {
  const tail = { medianMs: 4, sigma: 1.5 };
  const { results } = run(
    { name: 'σ 1.5', rps: 1000, baseline: { errorRate: 0, latency: tail }, canary: { errorRate: 0, latency: tail } },
    60,
  );
  const rolledBack = results.filter((r) => r.outcome === 'rollback').length;
  assert.ok(rolledBack <= 1, `false rollbacks ${share(rolledBack, 60)}`);
});

test('cold starts: a canary 8× slower only for its first 20 s is not rolled back (its warm-up), one that stays 8× slower is; a 3-s blip past the warm-up ends in a promotion', () => {
  const cold = { forS: 20, factor: 8 };
  const warming = run({ name: 'cold', rps: 100, baseline: v(0.01), canary: v(0.01), slowCanary: cold }, 200);
  const falseRollbacks = warming.results.filter((r) => r.outcome === 'rollback').length;
  assert.ok(falseRollbacks <= 2, `cold canary rolled back ${share(falseRollbacks, 200)}`);
  // Without the warm-up the same canary is judged on its cold seconds: the test can fail.
  const unwarmed = run(
    {
      name: 'cold, no warm-up',
      rps: 100,
      baseline: v(0.01),
      canary: v(0.01),
      slowCanary: cold,
      policy: { warmup: null },
    },
    100,
  );
  assert.ok(unwarmed.summary.rollback >= 0.5, `without a warm-up ${unwarmed.summary.rollback * 100}% rolled back`);
  const slow = run(
    { name: 'slow', rps: 100, baseline: v(0.01), canary: v(0.01), slowCanary: { forS: 3600, factor: 8 } },
    100,
  );
  assert.ok(slow.summary.rollback >= 0.99, `staying slow: ${slow.summary.rollback * 100}% rolled back`);
  const blip = run(
    { name: 'blip', rps: 100, baseline: v(0.01), canary: v(0.01), slowCanary: { fromS: 120, forS: 3, factor: 8 } },
    100,
  );
  const decided = blip.results.filter((r) => r.outcome === 'promote' && r.atS <= 120 + 30 * 60).length;
  assert.ok(decided >= 99, `blip then clean: promoted within maxStepDuration of it ${share(decided, 100)}`);
});

test('sticky users whose own error rates differ (5% of 1,000 users fail 16% of their requests, on either version): the error tests count them as clustered — ≤ 2% false rollbacks, and a +5-point canary is still caught', () => {
  const users = { count: 1000, unevenShare: 0.05, unevenErrorRate: 0.16 };
  const aa = run({ name: 'sticky A/A', rps: 100, baseline: v(0.002), canary: v(0.002), users }, 100);
  const falseRollbacks = aa.results.filter((r) => r.outcome === 'rollback').length;
  // Counted as independent draws, 11% of these were rolled back.
  assert.ok(falseRollbacks <= 2, `false rollbacks ${share(falseRollbacks, 100)}`);
  const worse = run({ name: 'sticky +5', rps: 100, baseline: v(0.002), canary: v(0.052), users }, 50);
  const caught = worse.results.filter((r) => r.outcome === 'rollback').length;
  assert.ok(caught >= 48, `caught ${share(caught, 50)}`);
});

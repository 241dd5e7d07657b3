import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../common/random.js';
import { resolvePolicy } from '../../control-plane/model/policy.js';
import type { CanaryProgress } from '../../control-plane/model/progress.js';
import { decide } from '../../control-plane/rollout/decide.js';
import { compareAnswers, parsePointer } from '../../proxy/contract/compare.js';
import { parseRouteTable } from '../../proxy/contract/route-table.js';
import { type AgreementCounts, noAgreement, summarize } from '../../proxy/contract/stats.js';

const json = (v: unknown, status = 200) => ({ status, body: Buffer.from(JSON.stringify(v)) });
const spec = (fields: string[] = [], tolerance = 0, relativeTolerance = 0) => ({
  fields,
  tolerance,
  relativeTolerance,
});

test('comparison: JSON Pointer fields, labels exactly, numbers within absolute or relative tolerance, non-JSON byte for byte', () => {
  const a = json({ prediction: 'setosa', probability: 0.91, id: 'a' });
  const b = json({ prediction: 'setosa', probability: 0.9, id: 'b' });
  assert.equal(compareAnswers(a, b, spec(['/prediction'])).agreed, true);
  assert.equal(compareAnswers(a, b, spec()).agreed, false, 'the whole body differs (id)');
  assert.equal(compareAnswers(a, b, spec(['/prediction', '/probability'])).agreed, false);
  assert.equal(compareAnswers(a, b, spec(['/prediction', '/probability'], 0.02)).agreed, true);
  assert.equal(compareAnswers(a, b, spec(['/probability'], 0, 0.02)).agreed, true);
  const c = compareAnswers(a, json({ prediction: 'virginica' }), spec(['/prediction']));
  assert.deepEqual(c, { agreed: false, baseline: '"setosa"', canary: '"virginica"' });
  assert.deepEqual(compareAnswers(a, json({}), spec(['/prediction'])), {
    agreed: false,
    baseline: '"setosa"',
    canary: '(missing)',
  });
  assert.equal(
    compareAnswers(json({ scores: [0.1, 0.9] }), json({ scores: [0.1001, 0.8999] }), spec(['/scores'], 0.001)).agreed,
    true,
  );
  assert.equal(compareAnswers(json([{ 'a/b': 1 }]), json([{ 'a/b': 1 }]), spec(['/0/a~1b'])).agreed, true);
  assert.equal(
    compareAnswers({ status: 200, body: Buffer.from('ok') }, { status: 200, body: Buffer.from('ok') }, spec(['/x']))
      .agreed,
    true,
  );
  assert.equal(
    compareAnswers({ status: 200, body: Buffer.from('ok') }, { status: 200, body: Buffer.from('ok!') }, spec()).agreed,
    false,
  );
  assert.deepEqual(compareAnswers(a, json({ error: 'bad' }, 422), spec()), {
    agreed: false,
    baseline: 'HTTP 200',
    canary: 'HTTP 422',
  });
  assert.throws(() => parsePointer('prediction'), /must start with "\/"/);
  assert.throws(() => parsePointer('/a~2'), /"~" must be followed by 0 or 1/);
});

test('policy.shadow: defaults, field or fields, and clear errors naming the field', () => {
  const p = resolvePolicy({ shadow: { compare: { field: '/prediction' } } });
  assert.deepEqual(p.shadow!.compare.fields, ['/prediction']);
  assert.equal(p.shadow!.agreementMin, 0.95);
  assert.equal(resolvePolicy({ shadow: true }).shadow!.percent, 100);
  assert.equal(resolvePolicy({}).shadow, null);
  assert.throws(
    () => resolvePolicy({ shadow: { agreementMin: 2 } }),
    /policy\.shadow\.agreementMin: expected a number from 0.5 to 0.9999/,
  );
  assert.throws(
    () => resolvePolicy({ shadow: { compare: { field: 'prediction' } } }),
    /policy\.shadow\.compare\.field: .*must start with "\/"/,
  );
  assert.throws(() => resolvePolicy({ shadow: { percentage: 5 } }), /policy\.shadow\.percentage: unknown field/);
  assert.throws(() => resolvePolicy({ shadow: { duration: 'soon' } }), /shadow\.duration/);
  assert.throws(
    () =>
      parseRouteTable({
        deployments: {
          m: {
            baseline: { version: 'v1', url: 'http://a' },
            canary: null,
            shadow: { percent: 100, noisePercent: 0, timeoutMs: 100, maxConcurrency: 1 },
          },
        },
      }),
    /shadow: needs a canary/,
  );
});

// ── the gate, replayed on a fake clock ─────────────────────────────────────────────────
const policy = resolvePolicy({
  interval: '30s',
  steps: [1, 10, 50, 100],
  minRequests: 100,
  shadow: { duration: '5m', compare: { field: '/prediction' }, agreementMin: 0.95, minRequests: 200 },
});

function statsWith(n: number, agreement: AgreementCounts, noise: AgreementCounts = noAgreement()) {
  const h = new Map<number, number>();
  const mk = (v: string, count: number, a: AgreementCounts) => {
    const s = summarize('m', v, 0, 0, count, Math.round(count * 0.01), 0, h);
    return { ...s, histogram: undefined, agreement: a };
  };
  return { canary: mk('v2', n, agreement), baseline: mk('v1', n, noise) };
}

/** Looks every 30 s at a canary whose answers agree with probability `p`, `perLook` compared per look. */
function gate(p: number, seed: number, perLook = 100, maxLooks = 120, noise?: number) {
  const rnd = seededRandom(seed);
  let progress: CanaryProgress = { weight: 0, stepStartedAt: 0, paused: false, p99BreachSince: null, phase: 'shadow' };
  const a = noAgreement(),
    nz = noAgreement();
  for (let look = 1; look <= maxLooks; look++) {
    for (let i = 0; i < perLook; i++) {
      a.compared++;
      if (rnd() < p) a.agreed++;
    }
    if (noise !== undefined)
      for (let i = 0; i < perLook / 10; i++) {
        nz.noiseCompared++;
        if (rnd() < noise) nz.noiseAgreed++;
      }
    const d = decide(progress, policy, statsWith(a.compared, { ...a }, { ...nz }), look * 30_000, { explain: false });
    const rule = d.rules.find((r) => r.rule === 'agreement')!;
    if (rule.status === 'fail') return { outcome: 'fail' as const, compared: a.compared, look };
    if (rule.status === 'pass' && a.compared >= 200) return { outcome: 'pass' as const, compared: a.compared, look };
    progress = d.progress;
  }
  return { outcome: 'undecided' as const, compared: a.compared, look: maxLooks };
}

const runs = (p: number, n: number, perLook = 100) => Array.from({ length: n }, (_, i) => gate(p, 1000 + i, perLook));
const count = (rs: ReturnType<typeof gate>[], o: string) => rs.filter((r) => r.outcome === o).length;

test('agreement gate, simulated (300 seeded shadow phases per case, a look every 30 s, 100 compared answers per look)', () => {
  // False alarms: a canary that truly agrees 99% (or exactly at the 95% limit) is almost never rolled back.
  const good = runs(0.99, 300);
  assert.ok(count(good, 'fail') <= 3, `99% agreement rolled back ${count(good, 'fail')}/300`);
  assert.ok(count(good, 'pass') >= 0.95 * 300, `99% agreement passed ${count(good, 'pass')}/300`);
  const boundary = runs(0.95, 300);
  assert.ok(count(boundary, 'fail') <= 3, `exactly 95% rolled back ${count(boundary, 'fail')}/300`);
  // Power: 73% (the demo's v4) is always caught at the first look; 90% almost always within an hour.
  const bad = runs(0.73, 300);
  assert.equal(count(bad, 'fail'), 300);
  assert.ok(
    bad.every((r) => r.look <= 2),
    `73%: caught by look ${Math.max(...bad.map((r) => r.look))}`,
  );
  const worse = runs(0.9, 300);
  assert.ok(count(worse, 'fail') >= 0.95 * 300, `90% agreement rolled back ${count(worse, 'fail')}/300`);
  assert.equal(count(worse, 'pass'), 0);
});

test("xDS: a shadowing canary gives the Envoy route a request mirror policy for the same share; it encodes as Envoy's RouteConfiguration", async () => {
  const { buildSnapshot, ENVOY_LISTENER } = await import('../../control-plane/xds/snapshot.js');
  const { TYPE } = await import('../../control-plane/xds/protos.js');
  const { encode, decode } = await import('../../control-plane/xds/codec.js');
  const table = parseRouteTable({
    version: 1,
    deployments: {
      iris: {
        baseline: { version: 'v1', url: 'http://127.0.0.1:8001' },
        canary: { version: 'v4', url: 'http://127.0.0.1:8004', weight: 0 },
        shadow: {
          percent: 25,
          noisePercent: 5,
          timeoutMs: 1000,
          maxConcurrency: 8,
          compare: { fields: ['/prediction'] },
        },
      },
    },
  });
  const route = buildSnapshot(table).resources[TYPE.route].get(ENVOY_LISTENER)!;
  const back = decode(TYPE.route, encode(TYPE.route, route)) as any;
  const action = back.virtual_hosts[0].routes[0].route;
  assert.deepEqual(
    action.request_mirror_policies.map((m: any) => [
      m.cluster,
      m.runtime_fraction.default_value.numerator,
      m.runtime_fraction.default_value.denominator,
    ]),
    [['iris__v4', 250_000, 'MILLION']],
  );
  // Live again: no mirror.
  const live = parseRouteTable({
    version: 2,
    deployments: {
      iris: {
        ...table.deployments.iris,
        shadow: null,
        canary: { version: 'v4', url: 'http://127.0.0.1:8004', weight: 10 },
      },
    },
  });
  assert.equal(
    (buildSnapshot(live).resources[TYPE.route].get(ENVOY_LISTENER) as any).virtual_hosts[0].routes[0].route
      .request_mirror_policies,
    undefined,
  );
});

test('the gate in decide(): held in shadow until its duration, then the first step (steps "auto": from the traffic the baseline served); an agreement below the limit rolls back', async () => {
  const { addValue } = await import('../../proxy/contract/histogram.js');
  const h = new Map<number, number>();
  [
    [20, 900],
    [45, 60],
    [60, 35],
    [70, 5],
  ].forEach(([ms, c]) => {
    addValue(h, ms, c * 10);
  });
  const side = (v: string, n: number, a: AgreementCounts) => ({
    ...summarize('m', v, 0, 0, n, Math.round(n * 0.01), 0, new Map(h)),
    agreement: a,
  });
  const stats = (agreed: number, compared = 10_000) => ({
    canary: side('v2', compared, { ...noAgreement(), compared, agreed }),
    baseline: side('v1', 10_000, { ...noAgreement(), noiseCompared: 500, noiseAgreed: 500 }),
    business: { baseline: { n: 1000, mean: 0.5, variance: 0.25 }, canary: { n: 0, mean: 0, variance: 0 } },
  });
  const start: CanaryProgress = { weight: 0, stepStartedAt: 0, paused: false, p99BreachSince: null, phase: 'shadow' };
  const early = decide(start, policy, stats(9990), 60_000);
  assert.equal(early.verdict, 'healthy');
  assert.deepEqual(early.actions, [], 'held: the shadow lasts its duration (5 min)');
  assert.ok(
    !early.rules.some((r) => r.rule === 'business'),
    'no business rule in shadow: no user got an answer from the canary',
  );
  const gate = decide(start, policy, stats(9990), 5 * 60_000);
  assert.deepEqual(gate.actions, [{ type: 'advance', weight: 1, fromShadow: true }]);
  assert.equal(gate.progress.phase, undefined);
  assert.equal(gate.progress.strata!.length, 1, 'the shadow phase is kept as evidence (a stratum)');
  assert.equal(gate.progress.strata![0].weight, 0);
  const agreement = gate.rules.find((r) => r.rule === 'agreement')!;
  assert.ok(agreement.canary!.estimate! > 0.998 && agreement.canary!.low! > 0.99, 'evidence reads as agreement');
  // steps "auto": 10,000 baseline requests in 5 min is 33 rps, enough to start above 1%.
  const auto = decide(
    start,
    resolvePolicy({
      steps: 'auto',
      interval: '30s',
      minRequests: 100,
      shadow: { duration: '5m', compare: { field: '/prediction' } },
    }),
    stats(9990),
    5 * 60_000,
  );
  assert.equal(auto.actions[0].type, 'advance');
  assert.ok((auto.actions[0] as { weight: number }).weight > 1);
  // Live again (by the gate or by hand): no agreement rule.
  assert.ok(!decide(gate.progress, policy, stats(9990), 6 * 60_000).rules.some((r) => r.rule === 'agreement'));
  const bad = decide(start, policy, stats(7300), 30_000);
  assert.equal(bad.verdict, 'critical');
  // The action says it happened in shadow: the executor writes shadow_failed from it, not from the row.
  assert.deepEqual(bad.actions, [{ type: 'rollback', fromShadow: true }]);
  assert.equal(bad.rules.find((r) => r.rule === 'agreement')!.status, 'fail');
});

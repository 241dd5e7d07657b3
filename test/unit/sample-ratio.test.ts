import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../common/random.js';
import { resolvePolicy } from '../../control-plane/model/policy.js';
import { decide } from '../../control-plane/rollout/decide.js';
import { addValue, type Buckets } from '../../proxy/contract/histogram.js';
import { countKeyed, noKeyGroups } from '../../proxy/contract/key-groups.js';
import { summarize } from '../../proxy/contract/stats.js';
import { bucketOf, keyGroupOf } from '../../proxy/split/splitter.js';

const policy = resolvePolicy({ interval: '30s', steps: [50, 100], minRequests: 100 });

/** Stats of one variant as the proxies count them: answers, routing draws, keyed groups. */
function side(version: string, n: number, keyed?: number[]) {
  const h: Buckets = new Map();
  addValue(h, 20, Math.round(n * 0.95));
  addValue(h, 45, n - Math.round(n * 0.95));
  return summarize('m', version, 0, 0, n, Math.round(n * 0.01), 0, h, { routed: n, keyed });
}

/** Routes `requests` of each key through the real split at `weight`%, as the proxy does. */
function routeKeys(keys: string[], requestsPerKey: number, weight: number) {
  const counts = { v1: 0, v2: 0 };
  const keyed = { v1: noKeyGroups(), v2: noKeyGroups() };
  for (const key of keys) {
    const v = bucketOf(key) < weight * 100 ? 'v2' : 'v1';
    counts[v] += requestsPerKey;
    for (let i = 0; i < requestsPerKey; i++) countKeyed(keyed[v], keyGroupOf(key), false);
  }
  return { canary: side('v2', counts.v2, keyed.v2), baseline: side('v1', counts.v1, keyed.v1) };
}

const judge = (stats: ReturnType<typeof routeKeys>, weight = 50) =>
  decide({ weight, stepStartedAt: 0, paused: false, p99BreachSince: null }, policy, stats, 60_000);
const srm = (d: ReturnType<typeof judge>) => d.rules.find((r) => r.rule === 'sample_ratio')!;

test('a million distinct sticky keys through the real split: the canary’s share matches its weight, no mismatch', () => {
  const keys = Array.from({ length: 1_000_000 }, (_, i) => `user-${i}`);
  for (const weight of [10, 50]) {
    const d = judge(routeKeys(keys, 1, weight), weight);
    assert.equal(srm(d).status, 'pass', srm(d).summary);
    assert.match(srm(d).summary, new RegExp(`at a ${weight}% weight: as the split should`));
  }
});

test('random routing at the weight: no mismatch; at 45% of requests for a 50% weight: held, never rolled back, said', () => {
  const u = seededRandom(3);
  const draw = (n: number, share: number) => {
    let c = 0;
    for (let i = 0; i < n; i++) if (u() < share) c++;
    return { canary: side('v2', c), baseline: side('v1', n - c) };
  };
  assert.equal(srm(judge(draw(20_000, 0.5))).status, 'pass');
  const biased = judge(draw(20_000, 0.45));
  assert.equal(srm(biased).status, 'warn');
  assert.equal(biased.verdict, 'degraded', 'held: the other rules pass, the split does not');
  assert.deepEqual(biased.actions, []);
  assert.match(
    srm(biased).summary,
    /the canary got 4\d\.\d+% of routed requests .* at a 50% weight: p=.* bias the split; decisions held/,
  );
});

test('three heavy sticky keys at 50%: the verdict reports the mismatch and the canary is not promoted', () => {
  const d = judge(routeKeys(['alice', 'bob', 'carol'], 3000, 50));
  assert.equal(srm(d).status, 'warn', srm(d).summary);
  assert.match(srm(d).summary, /as concentrated as \d\.\d equal keys: a split over so few users cannot be random/);
  assert.notEqual(d.verdict, 'healthy');
  assert.ok(!d.actions.some((a) => a.type === 'promote' || a.type === 'advance'), JSON.stringify(d.actions));
});

test('proxies that count no routing draws (older ones): the check is skipped, and nothing else changes', () => {
  const plain = (version: string, n: number) => {
    const h: Buckets = new Map();
    addValue(h, 20, n);
    return summarize('m', version, 0, 0, n, 0, 0, h);
  };
  const d = judge({ canary: plain('v2', 5000), baseline: plain('v1', 5000) });
  assert.equal(srm(d).status, 'skipped');
});

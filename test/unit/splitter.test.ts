import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../model-servers/iris.js';
import type { DeploymentRoute } from '../../proxy/contract/route-table.js';
import { BUCKETS, bucketOf, pickVariant } from '../../proxy/split/splitter.js';

const route = (weight: number | null): DeploymentRoute => ({
  name: 'm',
  baseline: { version: 'v1', url: 'http://b' },
  canary: weight === null ? null : { version: 'v2', url: 'http://c', weight },
});

test('a table with no canary sends everything to the baseline', () => {
  for (let i = 0; i < 1000; i++) assert.equal(pickVariant(route(null), `k${i}`).role, 'baseline');
});

test('0% and 100% are exact, keyed or not', () => {
  const rnd = seededRandom(1);
  for (let i = 0; i < 20_000; i++) {
    assert.equal(pickVariant(route(0), i % 2 ? `k${i}` : undefined, rnd).role, 'baseline');
    assert.equal(pickVariant(route(100), i % 2 ? `k${i}` : undefined, rnd).role, 'canary');
  }
});

test('random draws respect the weight within tolerance (20% of 100,000 within ±0.5 points)', () => {
  const rnd = seededRandom(7);
  let canary = 0;
  for (let i = 0; i < 100_000; i++) if (pickVariant(route(20), undefined, rnd).role === 'canary') canary++;
  assert.ok(Math.abs(canary / 1000 - 20) < 0.5, `got ${canary / 1000}%`);
});

test('keys spread evenly over the buckets (each weight within ±1 point over 20,000 keys)', () => {
  for (const w of [1, 10, 20, 50, 90]) {
    let canary = 0;
    for (let i = 0; i < 20_000; i++) if (pickVariant(route(w), `user-${i}`).role === 'canary') canary++;
    assert.ok(Math.abs((canary / 20_000) * 100 - w) < 1, `weight ${w}: got ${(canary / 200).toFixed(2)}%`);
  }
});

test('property: the same key always lands on the same variant while the weight holds', () => {
  const rnd = seededRandom(3);
  for (let trial = 0; trial < 200; trial++) {
    const w = Math.round(rnd() * 10000) / 100;
    const key = `k-${Math.floor(rnd() * 1e9)}`;
    const first = pickVariant(route(w), key).role;
    for (let j = 0; j < 20; j++) assert.equal(pickVariant(route(w), key, rnd).role, first);
  }
});

test('property: a key in the canary stays there as the weight rises (monotone ramp)', () => {
  const rnd = seededRandom(11);
  for (let trial = 0; trial < 2000; trial++) {
    const key = `session-${Math.floor(rnd() * 1e9)}`;
    const w1 = rnd() * 100;
    const w2 = w1 + rnd() * (100 - w1);
    if (pickVariant(route(w1), key).role === 'canary') {
      assert.equal(pickVariant(route(w2), key).role, 'canary', `key ${key} left the canary going ${w1}% → ${w2}%`);
    }
  }
});

test('buckets are within [0, 10000)', () => {
  for (let i = 0; i < 10_000; i++) {
    const b = bucketOf(String(i));
    assert.ok(b >= 0 && b < BUCKETS);
  }
});

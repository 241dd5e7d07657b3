import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../model-servers/iris.js';
import { addValue, type Buckets, exactQuantile, mergeInto, quantile } from '../../proxy/contract/histogram.js';

function lognormal(rnd: () => number, mu: number, sigma: number): number {
  const u = 1 - rnd(),
    v = rnd();
  return Math.exp(mu + sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
}

test('p50/p95/p99 are within 2% of the exact nearest-rank values', () => {
  const rnd = seededRandom(5);
  for (const [mu, sigma] of [
    [1, 0.5],
    [3, 1.2],
    [-2, 0.3],
    [5, 2],
  ]) {
    const values = Array.from({ length: 20_000 }, () => lognormal(rnd, mu, sigma));
    const h: Buckets = new Map();
    for (const v of values) addValue(h, v);
    for (const q of [0.5, 0.95, 0.99]) {
      const exact = exactQuantile(values, q)!;
      const approx = quantile(h, q)!;
      assert.ok(Math.abs(approx - exact) / exact <= 0.02, `q${q} mu=${mu}: ${approx} vs ${exact}`);
    }
  }
});

test('merging two histograms equals one histogram of all values', () => {
  const rnd = seededRandom(9);
  const a: Buckets = new Map(),
    b: Buckets = new Map(),
    all: Buckets = new Map();
  for (let i = 0; i < 5000; i++) {
    const v = lognormal(rnd, 2, 1);
    addValue(i % 2 ? a : b, v);
    addValue(all, v);
  }
  mergeInto(a, b);
  assert.deepEqual([...a.entries()].sort(), [...all.entries()].sort());
});

test('an empty histogram has no quantiles', () => {
  assert.equal(quantile(new Map(), 0.5), null);
});

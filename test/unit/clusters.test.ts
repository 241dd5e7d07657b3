import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../common/random.js';
import { clusteringText, errorDispersion, errorInflation } from '../../control-plane/rollout/evidence/clusters.js';
import { ZERO } from '../../control-plane/rollout/evidence/counts.js';
import { KEY_GROUPS } from '../../proxy/contract/key-groups.js';

/** Step counts whose keyed requests come from `users`, each with its own error rate, hashed into groups. */
function keyedCounts(users: { rate: number; requests: number }[], seed: number, unkeyed = 0) {
  const u = seededRandom(seed);
  const keyed = new Array(2 * KEY_GROUPS).fill(0);
  let n = unkeyed,
    errors = 0;
  for (const user of users) {
    const g = Math.floor(u() * KEY_GROUPS);
    for (let i = 0; i < user.requests; i++) {
      const failed = u() < user.rate;
      keyed[g]++;
      if (failed) keyed[KEY_GROUPS + g]++;
      n++;
      if (failed) errors++;
    }
  }
  return { ...ZERO, n, errors, keyed };
}

test('users alike: the key groups vary as independent draws do, and nothing is discounted', () => {
  const users = Array.from({ length: 500 }, () => ({ rate: 0.01, requests: 40 }));
  const inflations = [1, 2, 3, 4, 5].map((seed) => errorDispersion(keyedCounts(users, seed)));
  for (const f of inflations) assert.ok(f >= 1 && f < 2, `inflation ${f}`);
  assert.equal(clusteringText({ canary: 1, baseline: 1 }), '');
});

test('uneven users (5% fail 16% of their requests): the inflation is what the users make it, and grows with their requests', () => {
  const users = (requests: number) =>
    Array.from({ length: 1000 }, (_, i) => ({ rate: i % 20 === 0 ? 0.16 : 0.002, requests }));
  const few = errorDispersion(keyedCounts(users(5), 1));
  const many = errorDispersion(keyedCounts(users(100), 1));
  assert.ok(many > 5, `100 requests a user: inflation ${many}`);
  assert.ok(many > 2 * few, `the same users with 5 requests each: ${few}, with 100: ${many}`);
  // Half the requests unkeyed (independent draws): only the keyed half is inflated.
  const half = errorDispersion(keyedCounts(users(100), 1, 100_000));
  assert.ok(Math.abs(half - (1 + (many - 1) / 2)) < 0.01 * many, `half keyed: ${half} vs ${many}`);
  assert.match(
    clusteringText(errorInflation(keyedCounts(users(100), 1), ZERO)),
    /sticky keys: errors cluster by user \(variance canary ×\d+\.\d.*a higher weight brings more users/,
  );
});

test('no keyed requests, too few of them, or no errors: 1', () => {
  assert.equal(errorDispersion(ZERO), 1);
  assert.equal(errorDispersion({ ...ZERO, n: 100, errors: 1 }), 1);
  assert.equal(errorDispersion(keyedCounts([{ rate: 0.5, requests: 30 }], 1)), 1);
  assert.equal(
    errorDispersion(
      keyedCounts(
        Array.from({ length: 100 }, () => ({ rate: 0, requests: 10 })),
        1,
      ),
    ),
    1,
  );
});

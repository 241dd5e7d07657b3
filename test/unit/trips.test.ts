import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Trip } from '../../proxy/contract/trip.js';
import { CanaryTripper, type SharedFault, TRIP_RUN } from '../../proxy/split/trips.js';

const T0 = 1_000_000_000_000;

function tripper() {
  const trips: Trip[] = [];
  const shared: SharedFault[] = [];
  const t = new CanaryTripper(
    (x) => trips.push(x),
    TRIP_RUN,
    (f) => shared.push(f),
  );
  return { t, trips, shared };
}

test('a canary failing alone trips after a run of 8, while the baseline answers', () => {
  const { t, trips, shared } = tripper();
  for (let i = 0; i < 50; i++) t.observeBaseline('m', i === 7, T0 + i * 10); // 2% baseline errors
  for (let i = 0; i < TRIP_RUN; i++) t.observe('m', 'v2', 'server_error', true, 1, T0 + 600 + i);
  assert.equal(trips.length, 1);
  assert.equal(shared.length, 0);
  assert.ok(t.isTripped('m', 'v2'));
});

test('a run of failures while the baseline fails too over the same seconds is a shared fault: not tripped, said once per run', () => {
  const { t, trips, shared } = tripper();
  // A dependency of both versions is down for a second: everything fails.
  for (let i = 0; i < 40; i++) t.observeBaseline('m', true, T0 + 500 + i * 10);
  for (let i = 0; i < TRIP_RUN; i++) t.observe('m', 'v2', 'server_error', true, 1, T0 + 900 + i);
  assert.equal(trips.length, 0);
  // Read over the run's span, reaching back for the baseline's latest ten answers.
  assert.deepEqual(shared, [{ deployment: 'm', version: 'v2', baselineRequests: 10, baselineFailures: 10 }]);
  assert.equal(t.isTripped('m', 'v2'), false);
  // Answers up to 2 s old still count (an outage straddling a second boundary)…
  for (let i = 0; i < TRIP_RUN; i++) t.observe('m', 'v2', 'server_error', true, 1, T0 + 1500 + i);
  assert.equal(trips.length, 0);
  // …but once the baseline has recovered, a canary still failing alone is tripped.
  for (let i = 0; i < 30; i++) t.observeBaseline('m', false, T0 + 3000 + i * 10);
  for (let i = 0; i < TRIP_RUN; i++) t.observe('m', 'v2', 'server_error', true, 1, T0 + 3400 + i);
  assert.equal(trips.length, 1);
});

test('too few baseline answers to tell: a run trips while none of them failed, and waits for more when some did', () => {
  const { t, trips } = tripper();
  for (let i = 0; i < 3; i++) t.observeBaseline('m', false, T0 + i);
  for (let i = 0; i < TRIP_RUN; i++) t.observe('m', 'v2', 'timeout', true, 1, T0 + 100 + i);
  assert.equal(trips.length, 1, 'no baseline failure at all: the canary fails alone');
  // At 100% the baseline answers only the canary's retries; here they fail too.
  const other = tripper();
  for (let i = 0; i < TRIP_RUN; i++) {
    other.t.observe('m', 'v2', 'server_error', true, 1, T0 + i * 10);
    other.t.observeBaseline('m', true, T0 + i * 10 + 5); // its retry
  }
  assert.equal(other.trips.length, 0, 'seven failed retries: not the canary alone, and not yet ten answers');
  for (let i = TRIP_RUN; i < 12; i++) {
    other.t.observe('m', 'v2', 'server_error', true, 1, T0 + i * 10);
    other.t.observeBaseline('m', true, T0 + i * 10 + 5);
  }
  assert.equal(other.trips.length, 0);
  assert.equal(other.shared.length, 1, 'ten failed retries: a shared fault, said once');
});

test("a burst is read over the run's own span: a busy clean second before it does not hide it", () => {
  const { t, trips, shared } = tripper();
  for (let i = 0; i < 900; i++) t.observeBaseline('m', false, T0 + i); // a clean second, 900 requests
  for (let i = 0; i < 80; i++) t.observeBaseline('m', i % 5 < 3, T0 + 1000 + i); // then 60% failing
  for (let i = 0; i < TRIP_RUN; i++) t.observe('m', 'v2', 'server_error', true, 1, T0 + 1080 + i);
  assert.equal(trips.length, 0, 'over both seconds the baseline failed 48/980, over the run 6/10');
  assert.deepEqual(shared, [{ deployment: 'm', version: 'v2', baselineRequests: 10, baselineFailures: 6 }]);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { insideWindows, nextOpening, resolveWindows } from '../../control-plane/model/gates.js';
import { policyToApi, resolvePolicy } from '../../control-plane/model/policy.js';
import type { CanaryProgress, StatsInput } from '../../control-plane/model/progress.js';
import { decide, foldStep } from '../../control-plane/rollout/decide.js';
import { addValue, type Buckets } from '../../proxy/contract/histogram.js';
import { summarize, type VersionStats } from '../../proxy/contract/stats.js';

/** People in the loop: approvals and deployment windows, on a fake clock through the real decide(). */

function stats(version: string, n: number, errors: number): VersionStats {
  const h: Buckets = new Map();
  addValue(h, 20, Math.round(n * 0.95));
  addValue(h, 45, n - Math.round(n * 0.95));
  return summarize('m', version, 0, 0, n, errors, 0, h);
}
const healthy = (): StatsInput => ({ canary: stats('v2', 5000, 50), baseline: stats('v1', 50_000, 500) });
const failing = (): StatsInput => ({ canary: stats('v2', 5000, 1500), baseline: stats('v1', 50_000, 500) });
const start = (weight: number): CanaryProgress => ({ weight, stepStartedAt: 0, paused: false, p99BreachSince: null });
const at = (iso: string) => Date.parse(iso);

test('bad approvals and windows are refused naming the field', () => {
  const bad = (policy: unknown, field: RegExp) =>
    assert.throws(
      () => resolvePolicy(policy),
      (e: Error & { code?: string }) => e.code === 'BAD_REQUEST' && field.test(e.message),
    );
  bad({ approvals: ['later'] }, /policy\.approvals\[0\]: unknown approval "later"/);
  bad({ approvals: 'promote' }, /policy\.approvals: expected a list/);
  bad({ windows: [] }, /policy\.windows: expected null or a non-empty list/);
  bad(
    { windows: [{ start: '9:00', end: '17:00', timeZone: 'UTC' }] },
    /policy\.windows\[0\]\.start: expected a time "HH:MM"/,
  );
  bad({ windows: [{ start: '09:00', end: '25:00', timeZone: 'UTC' }] }, /policy\.windows\[0\]\.end/);
  bad(
    { windows: [{ start: '09:00', end: '17:00', timeZone: 'Mars/Olympus' }] },
    /windows\[0\]\.timeZone: unknown time zone/,
  );
  bad({ windows: [{ start: '09:00', end: '17:00' }] }, /windows\[0\]\.timeZone/);
  bad(
    { windows: [{ days: ['monday'], start: '09:00', end: '17:00', timeZone: 'UTC' }] },
    /windows\[0\]\.days: unknown day/,
  );
  bad({ windows: [{ start: '09:00', end: '09:00', timeZone: 'UTC' }] }, /windows\[0\]: an empty window/);
  bad({ windows: [{ start: '09:00', end: '17:00', timeZone: 'UTC', tz: 1 }] }, /windows\[0\]\.tz: unknown field/);
  const ok = resolvePolicy({
    approvals: ['promote', 'steps', 'promote'],
    windows: [{ days: ['mon', 'fri'], start: '22:00', end: '02:30', timeZone: 'Europe/Berlin' }],
  });
  assert.deepEqual(ok.approvals, ['promote', 'steps']);
  assert.deepEqual(policyToApi(ok).windows, [
    { days: ['mon', 'fri'], start: '22:00', end: '02:30', timeZone: 'Europe/Berlin' },
  ]);
  assert.deepEqual(resolvePolicy(policyToApi(ok)).windows, ok.windows);
});

test('windows: local time in the zone, days, across midnight, and the next opening', () => {
  const office = resolveWindows(
    [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00', timeZone: 'America/New_York' }],
    null,
  );
  // Monday 2026-12-07 14:30 UTC is 09:30 in New York (EST, UTC−5).
  assert.equal(insideWindows(office, at('2026-12-07T14:30:00Z')), true);
  assert.equal(insideWindows(office, at('2026-12-07T13:59:00Z')), false);
  assert.equal(insideWindows(office, at('2026-12-07T22:00:00Z')), false); // 17:00: the end is open
  assert.equal(insideWindows(office, at('2026-12-06T15:00:00Z')), false); // Sunday
  // From Saturday noon the next opening is Monday 09:00 New York.
  assert.equal(new Date(nextOpening(office!, at('2026-12-05T12:00:00Z'))!).toISOString(), '2026-12-07T14:00:00.000Z');
  // Across midnight: Friday 22:00 to Saturday 02:00 belongs to Friday.
  const night = resolveWindows([{ days: ['fri'], start: '22:00', end: '02:00', timeZone: 'UTC' }], null);
  assert.equal(insideWindows(night, at('2026-12-11T23:00:00Z')), true); // Friday night
  assert.equal(insideWindows(night, at('2026-12-12T01:59:00Z')), true); // Saturday morning
  assert.equal(insideWindows(night, at('2026-12-12T23:00:00Z')), false); // Saturday night
  assert.equal(insideWindows(night, at('2026-12-11T01:00:00Z')), false); // Friday morning (Thursday's night)
  assert.equal(insideWindows(null, 0), true);
});

test('approvals: a ready step or promotion waits, keeps its "since", and is said; a rollback never waits', () => {
  const policy = resolvePolicy({ approvals: ['steps', 'promote'], stepDuration: '30s' });
  const first = decide(start(1), policy, healthy(), 60_000);
  assert.equal(first.verdict, 'healthy');
  assert.deepEqual(first.actions, [{ type: 'await_approval', kind: 'step', weight: 10 }]);
  assert.equal(first.progress.weight, 1);
  assert.equal(first.progress.awaitingApproval?.since, 60_000);
  assert.match(first.reasons.join(' '), /waiting for approval to advance to 10%/);
  const again = decide(first.progress, policy, healthy(), 90_000);
  assert.equal(again.progress.awaitingApproval?.since, 60_000);
  // At the last step the promotion waits.
  const last = decide(start(100), policy, healthy(), 60_000);
  assert.deepEqual(last.actions, [{ type: 'await_approval', kind: 'promote' }]);
  // Only promote: steps go on by themselves.
  const promoteOnly = resolvePolicy({ approvals: ['promote'] });
  assert.deepEqual(decide(start(1), promoteOnly, healthy(), 60_000).actions, [{ type: 'advance', weight: 10 }]);
  // A failing canary that was waiting is rolled back at once.
  const bad = decide(first.progress, policy, failing(), 120_000);
  assert.equal(bad.verdict, 'critical');
  assert.deepEqual(bad.actions, [{ type: 'rollback' }]);
  // A weight set by hand ends the wait.
  assert.equal(foldStep(first.progress, 10, 150_000).awaitingApproval, null);
});

test('windows: outside every window a healthy canary holds and says when the next opens; it moves inside; a failing one is rolled back any time', () => {
  const policy = resolvePolicy({ windows: [{ start: '09:00', end: '17:00', timeZone: 'UTC' }] });
  const night = at('2026-12-07T03:00:00Z');
  const p = { ...start(1), stepStartedAt: night - 60_000 };
  const held = decide(p, policy, healthy(), night);
  assert.equal(held.verdict, 'healthy');
  assert.deepEqual(held.actions, []);
  assert.match(held.reasons.join(' '), /outside the deployment window; next opens 2026-12-07T09:00:00.000Z/);
  const morning = at('2026-12-07T09:00:30Z');
  assert.deepEqual(decide(held.progress, policy, healthy(), morning).actions, [{ type: 'advance', weight: 10 }]);
  assert.deepEqual(decide(p, policy, failing(), night).actions, [{ type: 'rollback' }]);
});

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { ProxyStatsSource } from '../../control-plane/metrics/source.js';
import type { RoutePublisher } from '../../control-plane/publish/route-publisher.js';
import { AnalysisLoop } from '../../control-plane/rollout/analysis-loop.js';
import { createRollout, type Rollout } from '../../control-plane/rollout/rollout.js';
import { connectDatabase, type Database } from '../../control-plane/state/db.js';
import { FeedbackStore } from '../../control-plane/state/feedback-store.js';
import { ControlStore } from '../../control-plane/state/store.js';
import { addValue } from '../../proxy/contract/histogram.js';
import { MemoryStatsStore } from '../../proxy/contract/memory-stats-store.js';
import type { RouteTable } from '../../proxy/contract/route-table.js';
import { type AgreementCounts, noAgreement, type StatsCell } from '../../proxy/contract/stats.js';
import { freshSchema, silent } from '../helpers/servers.js';

// The executor through whole rollouts on a fake clock: the real analysis loop, rollout core and
// PostgreSQL store; traffic is written second by second into the stats store the way proxies
// flush it, split by the weight in the route table last published (what the proxies apply).

let db: Database, drop: () => Promise<void>;
before(async () => {
  const schema = await freshSchema();
  drop = schema.drop;
  db = await connectDatabase(schema.url);
});
// One leader at a time: each test's loop lets go of the analysis lease when it ends.
const loops: AnalysisLoop[] = [];
afterEach(async () => {
  for (const l of loops.splice(0)) await l.stop();
});
after(async () => {
  await db.close();
  await drop();
});

class RecordingPublisher implements RoutePublisher {
  tables: RouteTable[] = [];
  async publish(t: RouteTable) {
    this.tables.push(t);
  }
}

interface Traffic {
  rps: number;
  baselineErrorRate: number;
  canaryErrorRate: number;
  /** In shadow: the share of mirrored answers that agree with the baseline's. */
  agreement?: number;
}

function cell(deployment: string, version: string, second: number, n: number, errorRate: number): StatsCell {
  const latency = new Map<number, number>();
  addValue(latency, 5, n);
  const modelErrors = Math.round(n * errorRate);
  return { deployment, version, epochSecond: second, requests: n, modelErrors, clientErrors: 0, latency };
}

async function world(name: string) {
  // Starts at the real time (the stats store prunes by it), then runs ahead on its own.
  let clock = Math.floor(Date.now() / 1000) * 1000;
  const now = () => clock;
  const store = new ControlStore(db.pool);
  const stats = new MemoryStatsStore();
  const publisher = new RecordingPublisher();
  const feedback = new FeedbackStore(db.pool);
  const rollout: Rollout = createRollout({
    store,
    feedback,
    publisher,
    metrics: new ProxyStatsSource(stats),
    trips: stats,
    logger: silent,
    now,
  });
  const loop = new AnalysisLoop(
    rollout,
    store,
    feedback,
    { tickMs: 1000, leaseMs: 60_000, reconcileMs: 60_000 },
    silent,
    now,
  );
  loops.push(loop);
  await rollout.deployments.createDeployment({ name, baseline: { version: 'v1', url: 'http://127.0.0.1:9001' } }, 't');
  /** One second of traffic at the published weight, flushed; then the clock moves on and the loop ticks. */
  const second = async (t: Traffic) => {
    const route = publisher.tables.at(-1)!.deployments[name];
    const weight = route.canary?.weight ?? 0;
    const s = Math.floor(clock / 1000);
    const canaryN = Math.round((t.rps * weight) / 100);
    const cells = [cell(name, 'v1', s, t.rps - canaryN, t.baselineErrorRate)];
    if (route.canary && canaryN > 0) cells.push(cell(name, route.canary.version, s, canaryN, t.canaryErrorRate));
    if (route.canary && route.shadow && t.agreement !== undefined) {
      // Mirrored requests: the canary's shadow answers count as its requests, with agreement.
      const n = Math.round((t.rps * route.shadow.percent) / 100);
      const c = cell(name, route.canary.version, s, n, t.canaryErrorRate);
      const agreement: AgreementCounts = { ...noAgreement(), compared: n, agreed: Math.round(n * t.agreement) };
      cells.push({ ...c, agreement });
    }
    await stats.write(cells);
    clock += 1000;
    await loop.tick();
  };
  /** Runs seconds of traffic until the canary has ended (or `limitS` fake seconds). */
  const runCanary = async (t: Traffic, limitS = 3600) => {
    for (let i = 0; i < limitS; i++) {
      await second(t);
      if (!(await rollout.queries.getDeployment(name)).canary) return i + 1;
    }
    assert.fail(`the canary of ${name} was still running after ${limitS} s`);
  };
  const events = async () =>
    (await rollout.queries.events(name, 100)).map((e) =>
      e.type === 'step_advanced' ? `step_advanced:${(e.after as { weight: number }).weight}` : e.type,
    );
  const weights = () => publisher.tables.map((t) => t.deployments[name]?.canary?.weight ?? null);
  return { rollout, loop, second, runCanary, events, weights, tables: () => publisher.tables, now };
}

const steady = (canaryErrorRate: number): Traffic => ({ rps: 200, baselineErrorRate: 0.01, canaryErrorRate });

test('a healthy canary walks every step on the fake clock and is promoted; each step is one event and one published table', async () => {
  const w = await world('walk');
  // Baseline traffic before the canary: the reference for its latency limits.
  for (let i = 0; i < 10; i++) await w.second(steady(0));
  await w.rollout.canary.startCanary(
    'walk',
    { version: 'v2', url: 'http://127.0.0.1:9002', policy: { steps: [10, 50, 100] } },
    't',
  );
  const seconds = await w.runCanary(steady(0.01));
  assert.deepEqual((await w.events()).reverse(), [
    'deployment_created',
    'version_registered',
    'canary_started',
    'step_advanced:50',
    'step_advanced:100',
    'auto_promote_triggered',
    'promoted',
  ]);
  // Every step lasted at least its stepDuration (30 s by default) of the fake clock.
  assert.ok(seconds >= 3 * 30, `promoted after ${seconds} fake seconds`);
  const published = [...new Set(w.weights().filter((x) => x !== null))];
  assert.deepEqual(published, [10, 50, 100]);
  const d = await w.rollout.queries.getDeployment('walk');
  assert.equal(d.baselineVersion, 'v2');
  const states = Object.fromEntries((await w.rollout.queries.versions('walk')).map((v) => [v.version, v.state]));
  assert.deepEqual(states, { v1: 'retired', v2: 'serving' });
});

test('a canary failing 30% of its requests is rolled back on the fast path, before its first interval', async () => {
  const w = await world('fail');
  for (let i = 0; i < 10; i++) await w.second(steady(0));
  await w.rollout.canary.startCanary('fail', { version: 'v2', url: 'http://127.0.0.1:9002', weight: 20 }, 't');
  const seconds = await w.runCanary(steady(0.3));
  // The interval is 30 s; the gross-failure check runs every tick and analyses at once.
  assert.ok(seconds < 30, `rolled back after ${seconds} fake seconds`);
  assert.deepEqual((await w.events()).slice(0, 3), ['rolled_back', 'auto_rollback_triggered', 'analysis_failed']);
  assert.equal(w.weights().at(-1), null, 'the last table published has no canary');
  const v2 = (await w.rollout.queries.versions('fail')).find((v) => v.version === 'v2')!;
  assert.equal(v2.state, 'rolled_back');
});

test('paused: the analysis keeps judging and recording, and takes no action until resumed', async () => {
  const w = await world('held');
  for (let i = 0; i < 10; i++) await w.second(steady(0));
  await w.rollout.canary.startCanary(
    'held',
    { version: 'v2', url: 'http://127.0.0.1:9002', weight: 50, policy: { steps: [50, 100] } },
    't',
  );
  await w.rollout.canary.setPaused('held', true, 't');
  for (let i = 0; i < 120; i++) await w.second(steady(0.01));
  const a = await w.rollout.queries.analysis('held');
  assert.ok(a.history.length >= 3, `${a.history.length} analyses while paused`);
  assert.ok(
    a.history.every((h) => h.action === 'hold'),
    'nothing applied while paused',
  );
  assert.equal((await w.rollout.queries.getDeployment('held')).canary?.weight, 50);
  await w.rollout.canary.setPaused('held', false, 't');
  await w.runCanary(steady(0.01));
  assert.equal((await w.rollout.queries.getDeployment('held')).baselineVersion, 'v2');
});

test('a shadow canary: held at weight 0 for its duration, then shadow_passed and live at its first step; one that disagrees is rolled back in shadow', async () => {
  const w = await world('mirror');
  for (let i = 0; i < 10; i++) await w.second(steady(0));
  const policy = { steps: [10, 100], shadow: { percent: 50, duration: '60s', minRequests: 200 } };
  await w.rollout.canary.startCanary('mirror', { version: 'v2', url: 'http://127.0.0.1:9002', policy }, 't');
  const live = { ...steady(0.01), agreement: 1 };
  for (let i = 0; i < 50; i++) await w.second(live);
  assert.equal(
    (await w.rollout.queries.getDeployment('mirror')).canary?.weight,
    0,
    'still in shadow before its duration',
  );
  await w.runCanary(live);
  const events = (await w.events()).reverse();
  assert.deepEqual(events.slice(2), [
    'canary_started',
    'shadow_started',
    'shadow_passed',
    'step_advanced:10',
    'step_advanced:100',
    'auto_promote_triggered',
    'promoted',
  ]);

  const fromTable = w.tables().length;
  await w.rollout.canary.startCanary('mirror', { version: 'v3', url: 'http://127.0.0.1:9003', policy }, 't');
  await w.runCanary({ ...steady(0.01), agreement: 0.7 });
  assert.deepEqual((await w.events()).slice(0, 4), [
    'rolled_back',
    'auto_rollback_triggered',
    'shadow_failed',
    'analysis_failed',
  ]);
  const v3Weights = w
    .tables()
    .slice(fromTable)
    .map((t) => t.deployments.mirror.canary)
    .filter((c) => c?.version === 'v3')
    .map((c) => c!.weight);
  assert.ok(v3Weights.length > 0 && v3Weights.every((x) => x === 0), `v3 never went live: ${v3Weights.join(', ')}`);
});

test('a deployment window on the fake clock: a healthy canary holds until the window opens, then advances at the first analysis inside; approvals hold the promotion until approved', async () => {
  const w = await world('windowed');
  for (let i = 0; i < 10; i++) await w.second(steady(0));
  // A UTC window that opens ten minutes from now (on a whole minute) and lasts two hours.
  const opens = Math.ceil((w.now() + 10 * 60_000) / 60_000) * 60_000;
  const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);
  await w.rollout.canary.startCanary(
    'windowed',
    {
      version: 'v2',
      url: 'http://127.0.0.1:9002',
      policy: {
        steps: [10, 50, 100],
        approvals: ['promote'],
        windows: [{ start: hhmm(opens), end: hhmm(opens + 2 * 3_600_000), timeZone: 'UTC' }],
      },
    },
    't',
  );
  // (Events carry the database's clock; the fake one is read off the published weights.)
  let advancedAt: number | null = null;
  while (w.now() < opens + 5 * 60_000) {
    await w.second(steady(0.01));
    if (advancedAt === null && (w.weights().at(-1) ?? 0) > 10) advancedAt = w.now();
  }
  assert.ok(advancedAt !== null, 'the canary advanced once the window opened');
  assert.ok(
    advancedAt >= opens,
    `advanced at ${new Date(advancedAt).toISOString()}, before ${new Date(opens).toISOString()}`,
  );
  assert.ok(advancedAt <= opens + 60_000, 'at the first analyses inside the window');
  const held = await w.rollout.queries.analysis('windowed', 1000);
  assert.ok(
    held.history.some(
      (a) => a.verdict === 'healthy' && a.reasons.some((r) => r.includes('outside the deployment window')),
    ),
  );
  // At the last step the promotion waits for a person.
  for (let i = 0; i < 600 && !(await w.rollout.queries.getDeployment('windowed')).canary?.state.awaitingApproval; i++)
    await w.second(steady(0.01));
  const waiting = (await w.rollout.queries.getDeployment('windowed')).canary!;
  assert.equal(waiting.state.awaitingApproval?.kind, 'promote');
  assert.equal(waiting.weight, 100);
  for (let i = 0; i < 30; i++) await w.second(steady(0.01));
  assert.equal((await w.rollout.queries.getDeployment('windowed')).canary?.weight, 100, 'still waiting');
  await w.rollout.approvals.approve('windowed', 'ok', 't');
  assert.deepEqual((await w.events()).slice(0, 3), ['promoted', 'approved', 'approval_requested']);
});

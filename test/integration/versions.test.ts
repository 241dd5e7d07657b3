import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ProxyStatsSource } from '../../control-plane/metrics/source.js';
import { createRollout } from '../../control-plane/rollout/rollout.js';
import { connectDatabase } from '../../control-plane/state/db.js';
import { FeedbackStore } from '../../control-plane/state/feedback-store.js';
import { ControlStore } from '../../control-plane/state/store.js';
import { VersionProber } from '../../control-plane/versions/prober.js';
import { startModelServer } from '../../model-servers/server.js';
import { MemoryStatsStore } from '../../proxy/contract/memory-stats-store.js';
import { closedPort, freshSchema, silent } from '../helpers/servers.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('earlier versions stay probed; a rollback skips one whose server is gone', async () => {
  const schema = await freshSchema();
  const db = await connectDatabase(schema.url);
  cleanups.push(
    () => schema.drop(),
    () => db.close(),
  );
  const store = new ControlStore(db.pool);
  const rollout = createRollout({
    store,
    feedback: new FeedbackStore(db.pool),
    publisher: { publish: async () => {} },
    metrics: new ProxyStatsSource(new MemoryStatsStore()),
    logger: silent,
  });
  const v1 = await startModelServer({ model: 'v1' });
  const v3 = await startModelServer({ model: 'v3' });
  cleanups.push(
    () => v1.close(),
    () => v3.close(),
  );
  const gone = `http://127.0.0.1:${await closedPort()}`;
  await rollout.deployments.createDeployment({ name: 'm', baseline: { version: 'v1', url: v1.url } }, 't');
  for (const [v, url] of [
    ['v2', gone],
    ['v3', v3.url],
    ['v4', v3.url],
  ] as const) {
    await rollout.canary.startCanary('m', { version: v, url }, 't');
    await rollout.canary.promote('m', null, 't');
  }
  // v4 serves; v3, v2 (its server is gone) and v1 are retired and probed.
  const prober = new VersionProber(store, 60_000, silent, 500);
  await prober.probeAll();
  const health = Object.fromEntries((await rollout.queries.versions('m')).map((v) => [v.version, v.healthy]));
  assert.deepEqual(health, { v4: true, v3: true, v2: false, v1: true });
  assert.equal(
    (await rollout.canary.rollback('m', { reason: 'bad v4', target: 'baseline' }, 't')).baselineVersion,
    'v3',
  );
  // Next default target would be v2, but its server is gone: v1 instead.
  assert.equal(
    (await rollout.canary.rollback('m', { reason: 'bad v3', target: 'baseline' }, 't')).baselineVersion,
    'v1',
  );
  // Asked for by name, a version whose probe fails is still rolled back to (a person knows
  // things a probe does not), and the answer and the event say so.
  const forced = await rollout.canary.rollback('m', { toVersion: 'v2' }, 't');
  assert.equal(forced.baselineVersion, 'v2');
  assert.match(forced.warnings.join('; '), /v2 failed its last health probe/);
  const event = (await rollout.queries.events('m', 1))[0];
  assert.equal(event.type, 'rolled_back');
  assert.match(JSON.stringify(event.after), /failed its last health probe/);
});

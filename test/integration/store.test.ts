import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CanaryError } from '../../common/errors.js';
import { ProxyStatsSource } from '../../control-plane/metrics/source.js';
import type { RoutePublisher } from '../../control-plane/publish/route-publisher.js';
import { createRollout, type Rollout } from '../../control-plane/rollout/rollout.js';
import { connectDatabase, type Database, startEmbeddedDatabase } from '../../control-plane/state/db.js';
import { FeedbackStore } from '../../control-plane/state/feedback-store.js';
import { ControlStore } from '../../control-plane/state/store.js';
import { MemoryStatsStore } from '../../proxy/contract/memory-stats-store.js';
import type { RouteTable } from '../../proxy/contract/route-table.js';
import { freshSchema, silent } from '../helpers/servers.js';

class RecordingPublisher implements RoutePublisher {
  tables: RouteTable[] = [];
  async publish(t: RouteTable) {
    this.tables.push(t);
  }
  get last() {
    return this.tables.at(-1)!;
  }
}

const code = (c: string) => (e: unknown) => e instanceof CanaryError && e.code === c;

/** The same suite runs against a real PostgreSQL server and the embedded PGlite. */
/**
 * Makes two requests truly concurrent: holds the deployment's row lock while both start
 * (so both read the same state), then lets them go. Embedded PGlite has one connection,
 * which queues requests in order and gives the same interleaving without help.
 */
type Gate = (deployment: string, run: () => Promise<unknown>) => Promise<void>;

function storeSuite(name: string, open: () => Promise<{ db: Database; cleanup(): Promise<void>; gate?: Gate }>) {
  describe(`control-plane store on ${name}`, () => {
    let db: Database,
      cleanup: () => Promise<void>,
      store: ControlStore,
      rollout: Rollout,
      pub: RecordingPublisher,
      gate: Gate | undefined;
    before(async () => {
      ({ db, cleanup, gate } = await open());
      store = new ControlStore(db.pool);
      pub = new RecordingPublisher();
      rollout = createRollout({
        store,
        feedback: new FeedbackStore(db.pool),
        publisher: pub,
        metrics: new ProxyStatsSource(new MemoryStatsStore()),
        logger: silent,
      });
    });
    after(async () => {
      await db.close();
      await cleanup();
    });

    test('creates a deployment with its event and publishes a route table', async () => {
      const d = await rollout.deployments.createDeployment(
        { name: 'iris', baseline: { version: 'v1', url: 'http://127.0.0.1:9001/models/iris/' } },
        'tester',
      );
      assert.equal(d.status, 'stable');
      // The path is a prefix every request keeps (the trailing slash is not part of it).
      assert.equal(d.baselineUrl, 'http://127.0.0.1:9001/models/iris');
      assert.deepEqual(pub.last.deployments.iris.baseline, { version: 'v1', url: 'http://127.0.0.1:9001/models/iris' });
      for (const url of ['http://127.0.0.1:9001/?a=1', 'http://127.0.0.1:9001/#top']) {
        await assert.rejects(
          rollout.deployments.createDeployment({ name: 'q', baseline: { version: 'v1', url } }, 't'),
          (e) =>
            e instanceof CanaryError &&
            e.code === 'BAD_REQUEST' &&
            /^baseline\.url: a query string or fragment/.test(e.message),
        );
      }
      await assert.rejects(
        rollout.deployments.createDeployment({ name: 'iris', baseline: { version: 'v1', url: 'http://x' } }, 't'),
        code('DEPLOYMENT_EXISTS'),
      );
      await assert.rejects(
        rollout.deployments.createDeployment({ name: 'bad name', baseline: { version: 'v1', url: 'http://x' } }, 't'),
        code('BAD_REQUEST'),
      );
      await assert.rejects(rollout.queries.getDeployment('nope'), code('DEPLOYMENT_NOT_FOUND'));
    });

    test('registers versions with metadata; the same url again is idempotent, another url conflicts', async () => {
      const r = await rollout.deployments.registerVersion(
        'iris',
        {
          version: 'v2',
          url: 'http://127.0.0.1:9002',
          metadata: { trainedAt: '2026-11-01', dataVersion: 'iris@1', metrics: { accuracy: 0.87 } },
        },
        't',
      );
      assert.equal(r.created, true);
      assert.equal(
        (await rollout.deployments.registerVersion('iris', { version: 'v2', url: 'http://127.0.0.1:9002' }, 't'))
          .created,
        false,
      );
      await assert.rejects(
        rollout.deployments.registerVersion('iris', { version: 'v2', url: 'http://127.0.0.1:9999' }, 't'),
        code('VERSION_EXISTS'),
      );
      const versions = await rollout.queries.versions('iris');
      assert.deepEqual(
        versions.map((v) => [v.version, v.state]),
        [
          ['v2', 'registered'],
          ['v1', 'serving'],
        ],
      );
      assert.equal((versions[0].metadata as { metrics: { accuracy: number } }).metrics.accuracy, 0.87);
    });

    test('starts one canary at a time, adjusts traffic, promotes, and keeps the old baseline ready', async () => {
      await rollout.canary.startCanary('iris', { version: 'v2', weight: 20 }, 't');
      assert.equal(pub.last.deployments.iris.canary?.weight, 20);
      await assert.rejects(rollout.canary.startCanary('iris', { version: 'v2' }, 't'), code('CANARY_RUNNING'));
      await rollout.canary.setTraffic('iris', 30, 't');
      assert.equal(pub.last.deployments.iris.canary?.weight, 30);
      await assert.rejects(rollout.canary.setTraffic('iris', 130, 't'), code('BAD_REQUEST'));
      const d = await rollout.canary.promote('iris', 'looks good', 't');
      assert.equal(d.baselineVersion, 'v2');
      assert.equal(d.canary, null);
      assert.equal(pub.last.deployments.iris.canary, null);
      assert.deepEqual(
        (await rollout.queries.versions('iris')).map((v) => [v.version, v.state]),
        [
          ['v2', 'serving'],
          ['v1', 'retired'],
        ],
      );
      await assert.rejects(rollout.canary.promote('iris', null, 't'), code('NO_CANARY'));
    });

    test('rolls the baseline back to the newest earlier version that served, then refuses when none is left', async () => {
      const d = await rollout.canary.rollback('iris', { reason: 'bad promote', target: 'baseline' }, 't');
      assert.equal(d.baselineVersion, 'v1');
      assert.deepEqual(
        (await rollout.queries.versions('iris')).map((v) => [v.version, v.state]),
        [
          ['v2', 'rolled_back'],
          ['v1', 'serving'],
        ],
      );
      await assert.rejects(rollout.canary.rollback('iris', { target: 'baseline' }, 't'), code('NO_ROLLBACK_TARGET'));
      await assert.rejects(rollout.canary.rollback('iris', { toVersion: 'v9' }, 't'), code('VERSION_NOT_FOUND'));
    });

    test('keeps several earlier versions and rolls back to a named one', async () => {
      for (const v of ['v3', 'v4', 'v5']) {
        await rollout.canary.startCanary('iris', { version: v, url: `http://127.0.0.1:90${v.slice(1)}0` }, 't');
        await rollout.canary.promote('iris', null, 't');
      }
      const states = Object.fromEntries((await rollout.queries.versions('iris')).map((v) => [v.version, v.state]));
      assert.deepEqual(states, { v5: 'serving', v4: 'retired', v3: 'retired', v1: 'retired', v2: 'rolled_back' });
      const d = await rollout.canary.rollback('iris', { reason: 'go back two', toVersion: 'v3' }, 't');
      assert.equal(d.baselineVersion, 'v3');
    });

    test('a promote racing a rollback: exactly one wins, the other gets 409, one event is written', async () => {
      await rollout.deployments.createDeployment(
        { name: 'race', baseline: { version: 'v1', url: 'http://127.0.0.1:9101' } },
        't',
      );
      for (let round = 0; round < 5; round++) {
        await rollout.canary.startCanary('race', { version: `c${round}`, url: `http://127.0.0.1:92${round}0` }, 't');
        let racing!: Promise<PromiseSettledResult<unknown>[]>;
        const race = () =>
          (racing = Promise.allSettled([
            rollout.canary.promote('race', null, 'a'),
            rollout.canary.rollback('race', {}, 'b'),
          ]));
        if (gate) await gate('race', race);
        else race();
        const results = await racing;
        const ok = results.filter((r) => r.status === 'fulfilled');
        const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        assert.equal(ok.length, 1, `round ${round}`);
        assert.equal(failed.length, 1);
        assert.equal((failed[0].reason as CanaryError).status, 409);
        const events = await rollout.queries.events('race', 3);
        assert.equal(events.filter((e) => e.type === 'promoted' || e.type === 'rolled_back').length, 1);
        assert.equal(events[1].type, 'canary_started');
      }
    });

    test('pause and resume are idempotent and need a running canary', async () => {
      await assert.rejects(rollout.canary.setPaused('race', true, 't'), code('NO_CANARY'));
      await rollout.canary.startCanary('race', { version: 'p1', url: 'http://127.0.0.1:9300' }, 't');
      assert.equal((await rollout.canary.setPaused('race', true, 't')).status, 'paused');
      await rollout.canary.setPaused('race', true, 't');
      assert.equal((await rollout.canary.setPaused('race', false, 't')).status, 'progressing');
      const types = (await rollout.queries.events('race', 3)).map((e) => e.type);
      assert.deepEqual(types, ['resumed', 'paused', 'canary_started']);
    });

    test('the audit trail is newest first with actor, reason and before/after', async () => {
      const events = await rollout.queries.events('iris', 100);
      assert.equal(events[0].type, 'rolled_back');
      assert.equal(events[0].reason, 'go back two');
      assert.deepEqual(events[0].before, { target: 'baseline', baseline: 'v5' });
      assert.deepEqual(events[0].after, { baseline: 'v3' });
      assert.equal(events.at(-1)!.type, 'deployment_created');
      assert.ok(events.every((e, i) => i === 0 || e.id < events[i - 1].id));
    });

    test('the analysis lease has one holder at a time and passes on when it expires', async () => {
      assert.equal(await store.acquireLease('test-lease', 'a', 300), true);
      assert.equal(await store.acquireLease('test-lease', 'b', 300), false);
      assert.equal(await store.acquireLease('test-lease', 'a', 300), true, 'the holder renews');
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(await store.acquireLease('test-lease', 'b', 300), true, 'taken over after expiry');
      assert.equal(await store.acquireLease('test-lease', 'a', 300), false);
    });
  });
}

storeSuite('a real PostgreSQL server', async () => {
  const schema = await freshSchema();
  const db = await connectDatabase(schema.url);
  const gate: Gate = async (deployment, run) => {
    const locker = await db.pool.connect();
    await locker.query('BEGIN');
    await locker.query('SELECT 1 FROM deployments WHERE name = $1 FOR UPDATE', [deployment]);
    run();
    await new Promise((r) => setTimeout(r, 150)); // both requests read the revision, then wait for the lock
    await locker.query('COMMIT');
    locker.release();
  };
  return { db, cleanup: schema.drop, gate };
});

storeSuite('the embedded PostgreSQL (PGlite)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-pglite-'));
  const db = await startEmbeddedDatabase(dir);
  return { db, cleanup: () => rm(dir, { recursive: true, force: true }) };
});

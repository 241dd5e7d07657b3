import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { statsRedis } from '../../common/redis.js';
import { RedisStatsStore } from '../../proxy/contract/redis-stats-store.js';
import { startLossyRelay } from '../helpers/lossy-relay.js';
import {
  blast,
  echoUpstream,
  eventually,
  post,
  REDIS_URL,
  route,
  startTestProxy,
  testPrefix,
} from '../helpers/servers.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('every stats flush is applied exactly once, though the network loses Redis answers after the writes and cuts connections', async () => {
  const redisUrl = new URL(REDIS_URL);
  // Every second flush reaches Redis, its answer is lost, and the connection is cut.
  const relay = await startLossyRelay(
    { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) },
    /HINCRBY|EVALSHA|EVAL/i,
    2,
  );
  const prefix = testPrefix();
  const statsClient = statsRedis(`redis://127.0.0.1:${relay.port}`);
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary');
  const proxy = await startTestProxy(
    { deployments: { m: route('m', base.url, can.url, 50) } },
    { stats: new RedisStatsStore(statsClient, prefix), config: { statsFlushMs: 50 } },
  );
  cleanups.push(
    () => relay.close(),
    () => proxy.close(),
    () => base.close(),
    () => can.close(),
  );
  const from = Date.now() - 1000;
  const sent = { baseline: 0, canary: 0 };
  for (let round = 0; round < 12; round++) {
    const answers = await blast(200, 8, async () => {
      const r = await post(`${proxy.url}/m/predict`, '{}');
      return { status: r.status, variant: String(r.headers['x-canary-variant']) };
    });
    for (const a of answers) {
      assert.equal(a.status, 200);
      sent[a.variant as 'baseline' | 'canary']++;
    }
  }
  assert.ok(relay.lost >= 3, `${relay.lost} flush answers lost`);
  relay.heal();
  // Read as the control plane does, on its own connection: exactly what was sent, per variant.
  const reader = new Redis(REDIS_URL);
  cleanups.push(async () => reader.disconnect());
  const store = new RedisStatsStore(reader, prefix);
  await eventually(
    async () => {
      const [b, c] = await Promise.all([
        store.read('m', 'v1', from, Date.now() + 1000),
        store.read('m', 'v2', from, Date.now() + 1000),
      ]);
      assert.deepEqual({ baseline: b.requests, canary: c.requests }, sent);
    },
    30_000,
    200,
  );
});

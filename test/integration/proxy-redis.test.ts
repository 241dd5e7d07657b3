import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { statsRedis } from '../../common/redis.js';
import { RedisStatsStore } from '../../proxy/contract/redis-stats-store.js';
import { RedisRouteSource } from '../../proxy/split/sources/redis-source.js';
import {
  echoUpstream,
  eventually,
  get,
  publishTable,
  REDIS_URL,
  route,
  silent,
  startTestProxy,
  startThrowawayRedis,
  startUpstream,
  testPrefix,
} from '../helpers/servers.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function redisProxy(url: string, prefix: string) {
  const source = new RedisRouteSource({ url, prefix, resyncMs: 500, logger: silent });
  const statsClient = statsRedis(url);
  const proxy = await startTestProxy(null, { source, stats: new RedisStatsStore(statsClient, prefix) });
  cleanups.push(async () => {
    await proxy.close();
    statsClient.disconnect();
  });
  return proxy;
}

/** Sends requests back to back until stopped; records every status. */
function steadyTraffic(url: string, concurrency = 4) {
  const statuses: number[] = [];
  const variants: string[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        // Bounded: a stuck request fails this test at once instead of hanging it.
        const r = await request(url, { headersTimeout: 10_000, bodyTimeout: 10_000 });
        await r.body.dump();
        statuses.push(r.statusCode);
        variants.push(String(r.headers['x-canary-variant']));
      } catch {
        statuses.push(-1);
      }
    }
  });
  return {
    statuses,
    variants,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

test('a weight change written through Redis reaches a running proxy (pub/sub, applied on the message), with no failed request', async () => {
  const prefix = testPrefix();
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => redis.quit());
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary');
  cleanups.push(
    () => base.close(),
    () => can.close(),
  );
  await publishTable(redis, prefix, { version: 1, deployments: { iris: route('iris', base.url, can.url, 0) } });
  const proxy = await redisProxy(REDIS_URL, prefix);
  assert.equal(proxy.table().version, 1);

  const traffic = steadyTraffic(`${proxy.url}/iris/x`, 2);
  // Each change lands while requests are in flight: wait for fresh traffic before each one.
  const flowing = async () => {
    const seen = traffic.statuses.length;
    await eventually(
      () => assert.ok(traffic.statuses.length >= seen + 5, `${traffic.statuses.length - seen} answers since`),
      10_000,
      5,
    );
  };
  const delays: number[] = [];
  for (const [v, w] of [
    [2, 100],
    [3, 0],
    [4, 50],
    [5, 100],
  ] as const) {
    await flowing();
    const t0 = Date.now();
    await publishTable(redis, prefix, { version: v, deployments: { iris: route('iris', base.url, can.url, w) } });
    await eventually(() => assert.equal(proxy.table().version, v), 2000, 1);
    // From the publish to the moment the proxy applied it (not to when this loop noticed).
    delays.push(proxy.tableAppliedAt()! - t0);
  }
  await flowing();
  await traffic.stop();
  assert.deepEqual(
    traffic.statuses.filter((s) => s !== 200),
    [],
  );
  assert.equal(traffic.variants.at(-1), 'canary');
});

test('an invalid table in Redis is refused and the last good one keeps serving', async () => {
  const prefix = testPrefix();
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => redis.quit());
  const base = await echoUpstream('baseline');
  cleanups.push(() => base.close());
  await publishTable(redis, prefix, { version: 1, deployments: { m: route('m', base.url, null) } });
  const proxy = await redisProxy(REDIS_URL, prefix);
  await publishTable(redis, prefix, {
    version: 2,
    deployments: { m: { baseline: { version: 'v1', url: 'not a url' } } },
  });
  await sleep(100);
  assert.equal(proxy.table().version, 1);
  assert.equal((await get(`${proxy.url}/m/x`)).status, 200);
  assert.match(String((await get(`${proxy.adminUrl}/readyz`)).json().routeSource.lastError), /url/);
});

test('Redis stopped and restarted mid-traffic: no failed request, /readyz and metrics say so, the proxy catches up and stats arrive', async () => {
  const prefix = testPrefix();
  let r1 = await startThrowawayRedis();
  const port = r1.port;
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary');
  cleanups.push(
    () => base.close(),
    () => can.close(),
  );
  const writer = new Redis(r1.url, { retryStrategy: () => 100, maxRetriesPerRequest: null });
  writer.on('error', () => {});
  cleanups.push(async () => writer.disconnect());
  await publishTable(writer, prefix, { version: 1, deployments: { iris: route('iris', base.url, can.url, 0) } });
  const proxy = await redisProxy(r1.url, prefix);
  cleanups.push(() => r1.stop());

  const traffic = steadyTraffic(`${proxy.url}/iris/x`);
  await sleep(300);
  await r1.stop();
  await eventually(async () => assert.equal((await get(`${proxy.adminUrl}/readyz`)).json().stale, true), 3000);
  const ready = await get(`${proxy.adminUrl}/readyz`);
  assert.equal(ready.status, 200, 'still ready: it serves the last table');
  assert.match((await get(`${proxy.adminUrl}/metrics`)).text, /canary_proxy_route_source_connected 0/);
  const sentDuringOutage = traffic.statuses.length;
  await sleep(1500); // flushes fail and are kept for later
  const outageRequests = traffic.statuses.length - sentDuringOutage;

  r1 = await startThrowawayRedis(port); // a new, empty Redis on the same address
  await publishTable(writer, prefix, { version: 7, deployments: { iris: route('iris', base.url, can.url, 100) } });
  await eventually(() => assert.equal(proxy.table().version, 7), 5000);
  await sleep(200);
  await traffic.stop();
  assert.deepEqual(
    traffic.statuses.filter((s) => s !== 200),
    [],
    'no request failed',
  );
  assert.equal(traffic.variants.at(-1), 'canary');
  assert.match((await get(`${proxy.adminUrl}/metrics`)).text, /canary_proxy_route_source_connected 1/);

  await proxy.flushStats();
  const reader = new RedisStatsStore(writer, prefix);
  const s = await reader.read('iris', 'v1', Date.now() - 60_000, Date.now());
  assert.ok(
    s.requests >= outageRequests && outageRequests > 0,
    `stats kept through the outage: ${s.requests} >= ${outageRequests}`,
  );
});

test('a canary failure its retry on the baseline also failed is counted as such (retryFailed, through Redis); one the retry answered is not', async () => {
  const prefix = testPrefix();
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => redis.quit());
  // The baseline fails the requests marked "down" (a dependency both use); the canary fails every request.
  const failing = (who: string, when: (url: string) => boolean) =>
    startUpstream((req, res) => {
      req.resume();
      const down = when(req.url ?? '');
      res.writeHead(down ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ who }));
    });
  const base = await failing('baseline', (u) => u.includes('down'));
  const can = await failing('canary', () => true);
  cleanups.push(
    () => base.close(),
    () => can.close(),
  );
  await publishTable(redis, prefix, { version: 1, deployments: { iris: route('iris', base.url, can.url, 100) } });
  const proxy = await redisProxy(REDIS_URL, prefix);
  const from = Date.now() - 1000;
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) {
    const r = await request(`${proxy.url}/iris/${i < 4 ? 'down' : 'up'}`, { method: 'POST', body: '{}' });
    await r.body.dump();
    statuses.push(r.statusCode);
  }
  assert.deepEqual(statuses, [...Array(4).fill(503), ...Array(8).fill(200)], 'the retry answers the users it can');
  const stats = new RedisStatsStore(redis, prefix);
  await eventually(async () => {
    const s = await stats.read('iris', 'v2', from, Date.now() + 1000);
    assert.equal(s.modelErrors, 12);
    assert.equal(s.retryFailed, 4);
  }, 20_000);
});

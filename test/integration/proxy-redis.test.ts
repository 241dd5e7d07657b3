import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { statsRedis } from '../../common/redis.js';
import { countKeyed, keyGroupCounts, noKeyGroups } from '../../proxy/contract/key-groups.js';
import { RedisStatsStore } from '../../proxy/contract/redis-stats-store.js';
import { RedisRouteSource } from '../../proxy/split/sources/redis-source.js';
import { bucketOf, keyGroupOf } from '../../proxy/split/splitter.js';
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

test('requests routed by a sticky key are counted per key group (through Redis): each user in its group, its errors with it; unkeyed requests in none', async () => {
  const prefix = testPrefix();
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => redis.quit());
  const ok = await startUpstream((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  // The canary fails every request of the "bad-" users (inputs it cannot handle).
  const picky = await startUpstream((req, res) => {
    req.resume();
    const bad = String(req.headers['x-canary-key'] ?? '').startsWith('bad-');
    res.writeHead(bad ? 503 : 200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  cleanups.push(
    () => ok.close(),
    () => picky.close(),
  );
  await publishTable(redis, prefix, { version: 1, deployments: { iris: route('iris', ok.url, picky.url, 50) } });
  const proxy = await redisProxy(REDIS_URL, prefix);
  const from = Date.now() - 1000;
  // Thirty users and ten "bad-" ones, interleaved (eight canary failures in a row would trip it).
  const keys = Array.from({ length: 40 }, (_, i) => (i % 4 === 3 ? `bad-${i}` : `user-${i}`));
  const expected = { v1: noKeyGroups(), v2: noKeyGroups() };
  for (let round = 0; round < 4; round++)
    for (const key of keys) {
      const version = bucketOf(key) < 5000 ? 'v2' : 'v1';
      const r = await request(`${proxy.url}/iris/predict`, {
        method: 'POST',
        body: '{}',
        headers: { 'x-canary-key': key },
      });
      await r.body.dump();
      assert.equal(r.statusCode, 200, 'a failed canary request is retried on the baseline');
      countKeyed(expected[version], keyGroupOf(key), version === 'v2' && key.startsWith('bad-'));
    }
  for (let i = 0; i < 20; i++)
    await (await request(`${proxy.url}/iris/predict`, { method: 'POST', body: '{}' })).body.dump();
  const stats = new RedisStatsStore(redis, prefix);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  await eventually(async () => {
    const [v1, v2] = await Promise.all(['v1', 'v2'].map((v) => stats.read('iris', v, from, Date.now() + 1000)));
    assert.equal(v1.requests + v2.requests, 4 * keys.length + 20, 'every routed request is counted');
    for (const [s, want] of [
      [v1, expected.v1],
      [v2, expected.v2],
    ] as const) {
      assert.deepEqual(s.keyGroups, keyGroupCounts(want), `${s.version}'s key groups`);
      // Retries of the canary's failures on the baseline are not routing draws: in no group.
      assert.ok(s.requests >= sum(want.slice(0, 16)), `${s.version}: unkeyed requests are counted, in no group`);
    }
    assert.equal(v2.modelErrors, sum(expected.v2.slice(16)), "the canary's errors are its bad users'");
  }, 20_000);
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { spawnProxy } from '../../common/processes.js';
import { exactQuantile } from '../../proxy/contract/histogram.js';
import { RedisStatsStore } from '../../proxy/contract/redis-stats-store.js';
import {
  blast,
  echoUpstream,
  get,
  publishTable,
  REDIS_URL,
  route,
  startUpstream,
  testPrefix,
} from '../helpers/servers.js';

const run = promisify(execFile);
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('stats from two writer processes merge exactly (counts) and within 2% (quantiles) of the raw latencies', async () => {
  const prefix = testPrefix();
  const writers = await Promise.all(
    [1, 2].map((seed) =>
      run(
        process.execPath,
        ['--import', 'tsx', 'test/helpers/stats-writer.ts', REDIS_URL, prefix, String(seed), '6000'],
        { maxBuffer: 1 << 26 },
      ),
    ),
  );
  const raw = writers.flatMap((w) => JSON.parse(w.stdout) as number[]);
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => redis.quit());
  const s = await new RedisStatsStore(redis, prefix).read('merge', 'v9', Date.now() - 120_000, Date.now() + 5000);
  assert.equal(s.requests, 12_000);
  assert.equal(s.modelErrors, 2 * 600);
  assert.equal(
    s.clientErrors,
    2 * Array.from({ length: 6000 }, (_, i) => i).filter((i) => i % 10 !== 0 && i % 7 === 0).length,
  );
  for (const [q, got] of [
    [0.5, s.p50],
    [0.95, s.p95],
    [0.99, s.p99],
  ] as const) {
    const exact = exactQuantile(raw, q)!;
    assert.ok(Math.abs(got! - exact) / exact <= 0.02, `p${q * 100}: ${got} vs exact ${exact}`);
  }
});

async function startProxyProcess(prefix: string) {
  const p = await spawnProxy({ REDIS_URL, CANARY_REDIS_PREFIX: prefix, LOG_LEVEL: 'info' });
  cleanups.push(() => p.stop());
  return { ...p, url: `http://127.0.0.1:${p.ready.port}` };
}

test('two real proxy processes sharing Redis: merged counts equal the requests sent through both', async () => {
  const prefix = testPrefix();
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => redis.quit());
  const base = await echoUpstream('baseline');
  // The canary fails every third request: often enough to count, never 8 in a row (which would trip it).
  let n = 0;
  const can = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => {
      const fail = n++ % 3 === 0;
      res.writeHead(fail ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ who: 'canary' }));
    });
  });
  cleanups.push(
    () => base.close(),
    () => can.close(),
  );
  await publishTable(redis, prefix, { version: 1, deployments: { iris: route('iris', base.url, can.url, 30) } });
  const [a, b] = await Promise.all([startProxyProcess(prefix), startProxyProcess(prefix)]);
  const t0 = Date.now();
  const results = await blast(2000, 16, async (i) => {
    const r = await get(`${(i % 2 ? a : b).url}/iris/predict`, { 'x-canary-key': `k${i}` });
    return {
      status: r.status,
      variant: String(r.headers['x-canary-retried-from'] ? 'canary' : r.headers['x-canary-variant']),
      retried: !!r.headers['x-canary-retried-from'],
    };
  });
  assert.ok(
    results.every((r) => r.status === 200),
    'canary failures were answered by the baseline',
  );
  const canarySent = results.filter((r) => r.variant === 'canary').length;
  const canaryFailed = results.filter((r) => (r as { retried?: boolean }).retried).length;
  assert.ok(canaryFailed > 0 && canaryFailed < canarySent);
  // SIGTERM: graceful shutdown flushes what is left.
  await Promise.all([a.stop(), b.stop()]);
  const store = new RedisStatsStore(redis, prefix);
  const v2 = await store.read('iris', 'v2', t0 - 1000, Date.now());
  const v1 = await store.read('iris', 'v1', t0 - 1000, Date.now());
  assert.equal(v2.requests, canarySent);
  assert.equal(v2.modelErrors, canaryFailed);
  assert.equal(
    v1.requests,
    2000 - canarySent,
    "the baseline's analysed requests are those the split sent it (retries are not counted)",
  );
  assert.equal(v1.modelErrors, 0);
});

test('trips reported by proxies through Redis reach the control plane once each, in order', async () => {
  const redis = new Redis(REDIS_URL);
  const prefix = testPrefix();
  const a = new RedisStatsStore(redis, prefix),
    b = new RedisStatsStore(redis, prefix);
  const trip = (version: string) => ({
    deployment: 'iris',
    version,
    at: Date.now(),
    tableVersion: 3,
    consecutiveFailures: 8,
    outcomes: Array(8).fill('timeout'),
  });
  await a.reportTrip(trip('v2'));
  await b.reportTrip(trip('v3'));
  const taken = await a.takeTrips();
  assert.deepEqual(
    taken.map((t) => t.version),
    ['v2', 'v3'],
  );
  assert.deepEqual(await b.takeTrips(), []);
  redis.disconnect();
});

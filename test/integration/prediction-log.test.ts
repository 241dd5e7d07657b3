import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { loadProxyConfig } from '../../common/config.js';
import { connectDatabase, type Database } from '../../control-plane/state/db.js';
import { MemoryStatsStore } from '../../proxy/contract/memory-stats-store.js';
import { startProxy } from '../../proxy/proxy.js';
import { StaticRouteSource } from '../../proxy/split/sources/static-source.js';
import { PgPredictionSink, PredictionLog, type PredictionRecord } from '../../proxy/telemetry/prediction-log.js';
import { startPgRelay } from '../helpers/pg-relay.js';
import { echoUpstream, eventually, freshSchema, get, post, route, silent, startTestProxy } from '../helpers/servers.js';

let db: Database, drop: () => Promise<void>, schemaUrl: string;
before(async () => {
  const schema = await freshSchema();
  drop = schema.drop;
  schemaUrl = schema.url;
  db = await connectDatabase(schema.url);
});
after(async () => {
  await db.close();
  await drop();
});

const record = (i: number): PredictionRecord => ({
  requestId: `r${i}`,
  deployment: 'd',
  version: 'v1',
  role: 'baseline',
  inputSha256: null,
  outcome: 'success',
  latencyMs: 1,
  at: Date.now(),
});

test('the proxy logs every answered request in batches: request id, version, role, input SHA-256, outcome', async () => {
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary');
  // The proxy reaches PostgreSQL through a relay that counts the statements it sends.
  const relay = await startPgRelay(schemaUrl);
  const pool = new pg.Pool({ connectionString: relay.url, max: 2 });
  pool.on('error', () => {});
  const proxy = await startProxy({
    config: loadProxyConfig({}, { host: '127.0.0.1', port: 0, adminPort: 0 }),
    routeSource: new StaticRouteSource({ deployments: { iris: route('iris', base.url, can.url, 50) } }),
    statsStore: new MemoryStatsStore(),
    logger: silent,
    predictionSink: new PgPredictionSink(pool),
    predictionLog: { flushMs: 60_000 },
  });
  const sent = new Map<string, { body: string; version: string }>();
  for (let i = 0; i < 300; i++) {
    const body = JSON.stringify({ features: { i } });
    const r = await post(`${proxy.url}/iris/predict`, body);
    sent.set(String(r.headers['x-request-id']), { body, version: String(r.headers['x-canary-version']) });
  }
  // A graceful stop (what SIGTERM does) writes what is queued: here, all 300 in one batch.
  await proxy.close();
  const inserts = relay.statements(/INSERT INTO predictions/i);
  assert.equal(inserts, 1, `${inserts} inserts for 300 requests`);
  const rows = (await db.pool.query('SELECT * FROM predictions')).rows;
  assert.equal(rows.length, 300);
  for (const r of rows) {
    const s = sent.get(r.request_id)!;
    assert.ok(s, `unknown request id ${r.request_id}`);
    assert.equal(r.version, s.version);
    assert.equal(r.role, s.version === 'v2' ? 'canary' : 'baseline');
    assert.equal(r.input_sha256, createHash('sha256').update(s.body).digest('hex'));
    assert.equal(r.outcome, 'success');
    assert.ok(!JSON.stringify(r).includes('features'), 'the body itself is never stored');
  }
  await pool.end();
  await relay.close();
  await base.close();
  await can.close();
});

test('a full queue drops and counts; a PostgreSQL that refuses delays records without losing them', async () => {
  await db.pool.query('DELETE FROM predictions');
  const relay = await startPgRelay(schemaUrl);
  const pool = new pg.Pool({ connectionString: relay.url, max: 1, connectionTimeoutMillis: 2000 });
  pool.on('error', () => {});
  relay.refuse(true);
  let droppedSeen = 0;
  const log = new PredictionLog(
    new PgPredictionSink(pool),
    { maxQueue: 100, batchSize: 30, flushMs: 60_000 },
    silent,
    (n) => {
      droppedSeen += n;
    },
  );
  for (let i = 0; i < 150; i++) log.record(record(i));
  await log.flush();
  assert.equal(log.queued, 100);
  assert.equal(log.dropped, 50);
  assert.equal(droppedSeen, 50);
  relay.refuse(false);
  // It comes back: the next flushes write what waited (however long a busy machine takes to reconnect).
  await eventually(
    async () => {
      await log.flush();
      assert.equal(log.queued, 0);
    },
    60_000,
    200,
  );
  const ids = (await db.pool.query('SELECT request_id FROM predictions ORDER BY at, request_id')).rows.map(
    (r) => r.request_id,
  );
  assert.deepEqual([...ids].sort(), Array.from({ length: 100 }, (_, i) => `r${i}`).sort());
  assert.equal(log.queued, 0);
  await pool.end();
  await relay.close();
});

test('drops show up in the proxy metrics', async () => {
  const base = await echoUpstream('baseline');
  const proxy = await startTestProxy({ deployments: { m: route('m', base.url, null) } });
  const failing = await startProxy({
    config: loadProxyConfig({}, { host: '127.0.0.1', port: 0, adminPort: 0 }),
    routeSource: new StaticRouteSource({ deployments: { m: route('m', base.url, null) } }),
    statsStore: new MemoryStatsStore(),
    logger: silent,
    predictionSink: {
      write: async () => {
        throw new Error('down');
      },
    },
    predictionLog: { maxQueue: 5, flushMs: 60_000 },
  });
  for (let i = 0; i < 8; i++) await get(`${failing.url}/m/x`);
  const metrics = (await get(`${failing.adminUrl}/metrics`)).text;
  assert.match(metrics, /canary_proxy_prediction_log_dropped_total 3/);
  assert.match(metrics, /canary_proxy_prediction_log_queue 5/);
  await failing.close();
  await proxy.close();
  await base.close();
});

test('a batch whose answer was lost (PostgreSQL inserted it; the proxy never heard) is retried and stored once', async () => {
  await db.pool.query('DELETE FROM predictions');
  const relay = await startPgRelay(schemaUrl);
  // query_timeout: a write whose answer never comes fails on the client, which then retries it.
  const pool = new pg.Pool({ connectionString: relay.url, max: 1, query_timeout: 3000 });
  pool.on('error', () => {});
  await pool.query('SELECT 1'); // connected before the answers start to go missing
  const log = new PredictionLog(new PgPredictionSink(pool), { maxQueue: 1000, batchSize: 50, flushMs: 60_000 }, silent);
  for (let i = 0; i < 50; i++) log.record({ ...record(i), requestId: `lost-${i}` });
  relay.swallow(true);
  await log.flush();
  assert.equal(log.queued, 50, 'unconfirmed: still queued');
  assert.ok(relay.statements(/INSERT INTO predictions/i) >= 1, 'the insert did reach PostgreSQL');
  relay.swallow(false); // the connections that lost their answers are cut; the pool reconnects
  await eventually(
    async () => {
      await log.flush();
      assert.equal(log.queued, 0);
    },
    60_000,
    200,
  );
  assert.equal(log.queued, 0);
  const n = (await db.pool.query("SELECT count(*)::int AS n FROM predictions WHERE request_id LIKE 'lost-%'")).rows[0]
    .n;
  assert.equal(n, 50, 'each prediction stored once');
  await pool.end();
  await relay.close();
});

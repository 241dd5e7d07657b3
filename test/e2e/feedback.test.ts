import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { type RunningStack, startStack } from '../../control-plane/main.js';
import { seededRandom } from '../../model-servers/iris.js';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { eventually, freshSchema, silent } from '../helpers/servers.js';

let stack: RunningStack, drop: () => Promise<void>, models: RunningModelServer[];
before(async () => {
  const schema = await freshSchema();
  drop = schema.drop;
  models = await Promise.all([startModelServer({ model: 'v1' }), startModelServer({ model: 'v3', version: 'v2' })]);
  stack = await startStack(
    loadControlPlaneConfig({ DATABASE_URL: schema.url, CANARY_API_PORT: '0', CANARY_XDS_PORT: 'off' }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
  await api('POST', '/v1/deployments', { name: 'shop', baseline: { version: 'v1', url: models[0].url } });
  await api('POST', '/v1/deployments/shop/canary', {
    version: 'v2',
    url: models[1].url,
    weight: 50,
    policy: { interval: '1h', minRequests: 20, businessFor: '0s', businessMinOutcomes: 100 },
  });
});
after(async () => {
  await stack.close();
  for (const m of models) await m.close();
  await drop();
});

const api = (method: string, url: string, payload?: unknown) =>
  stack.controlPlane.app
    .inject({ method: method as 'GET', url, payload: (payload ?? (method === 'GET' ? undefined : {})) as object })
    .then((r) => ({ status: r.statusCode, json: r.json() }));

/** Predictions through the real proxy; returns each request id with the version that answered. */
async function predict(n: number): Promise<{ id: string; version: string }[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = await request(`${stack.proxy.url}/shop/predict`, {
      method: 'POST',
      body: JSON.stringify({ features: { sepal_length: 6, sepal_width: 3, petal_length: 4.5, petal_width: 1.4 } }),
    });
    await r.body.dump();
    out.push({ id: String(r.headers['x-request-id']), version: String(r.headers['x-canary-version']) });
  }
  return out;
}

const joinedCount = async () =>
  Number((await stack.controlPlane.db.pool.query('SELECT count(*) FROM feedback')).rows[0].count);
/** Until no outcome waits for its prediction (the log is written about once a second). */
const settled = () =>
  eventually(async () => assert.equal((await api('GET', '/v1/feedback/pending')).json.pending, 0), 10_000, 100);

test('feedback posted right after each prediction, over HTTP, is all joined: pending until the log catches up, never dropped', async () => {
  const before = await joinedCount();
  let pendingSeen = 0;
  for (let i = 0; i < 30; i++) {
    const [p] = await predict(1);
    const r = await api('POST', '/v1/feedback', { requestId: p.id, outcome: i % 2 });
    assert.equal(r.status, 200);
    assert.equal(r.json.accepted + r.json.pending.length, 1, JSON.stringify(r.json));
    pendingSeen += r.json.pending.length;
  }
  assert.ok(pendingSeen > 0, 'the log is written in batches, so some outcomes arrived first');
  await eventually(async () => assert.equal((await joinedCount()) - before, 30), 10_000, 100);
});

test('feedback one by one and in batches joins the prediction log; pending and duplicate ids are reported', async () => {
  await settled();
  const preds = await predict(20);
  const one = await api('POST', '/v1/feedback', { requestId: preds[0].id, outcome: 1 });
  assert.equal(one.status, 200);
  assert.equal(one.json.accepted + one.json.pending.length, 1);
  const batch = await api('POST', '/v1/feedback', {
    items: [
      ...preds.slice(1, 10).map((p) => ({ requestId: p.id, outcome: 0 })),
      { requestId: preds[0].id, outcome: 0 }, // already has an outcome (or one waiting)
      { requestId: preds[1].id, outcome: 1 }, // twice in this batch
      { requestId: 'no-such-request', outcome: 1 },
    ],
  });
  assert.equal(batch.json.accepted + batch.json.pending.length, 10);
  assert.ok(batch.json.pending.includes('no-such-request'));
  assert.deepEqual(batch.json.duplicates.sort(), [preds[0].id, preds[1].id].sort());
  // Everything but the id no prediction has joins; that one waits (and expires after 10 min).
  await eventually(async () => assert.equal((await api('GET', '/v1/feedback/pending')).json.pending, 1), 10_000, 100);
  const rows = (
    await stack.controlPlane.db.pool.query(
      `SELECT request_id, version, outcome FROM feedback WHERE request_id = ANY($1) ORDER BY request_id`,
      [preds.map((p) => p.id)],
    )
  ).rows;
  assert.equal(rows.length, 10);
  for (const r of rows)
    assert.equal(r.version, preds.find((p) => p.id === r.request_id)!.version, 'joined to the version that answered');
  assert.equal(rows.find((r) => r.request_id === preds[0].id).outcome, 1, 'the first outcome stands');
});

test('bad feedback gets 400 with a clear message; batches are capped at 1,000', async () => {
  for (const [body, msg] of [
    [{}, /expected \{requestId, outcome\}/],
    [{ requestId: 'x', outcome: 'yes' }, /outcome: expected a number/],
    [{ items: Array.from({ length: 1001 }, (_, i) => ({ requestId: `r${i}`, outcome: 1 })) }, /1 to 1000/],
  ] as const) {
    const r = await api('POST', '/v1/feedback', body);
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'BAD_REQUEST');
    assert.match(r.json.error.message, msg);
  }
});

test('a canary whose conversion rate is far lower is rolled back by the business rule; later outcomes are stored as late', async () => {
  // Enough outcomes that the drop is beyond doubt at the business rule's share of the
  // false-rollback budget (p ≤ 0.001).
  const preds = await predict(1200);
  const rnd = seededRandom(7);
  // Baseline converts 30% of the time, the canary 10%.
  const items = preds.map((p) => ({ requestId: p.id, outcome: rnd() < (p.version === 'v2' ? 0.1 : 0.3) ? 1 : 0 }));
  for (let i = 0; i < items.length; i += 250) await api('POST', '/v1/feedback', { items: items.slice(i, i + 250) });
  await eventually(
    async () => {
      const n = (
        await stack.controlPlane.db.pool.query('SELECT count(*) FROM feedback WHERE request_id = ANY($1)', [
          preds.map((p) => p.id),
        ])
      ).rows[0].count;
      assert.equal(Number(n), preds.length);
    },
    10_000,
    100,
  );
  const r = await api('POST', '/v1/deployments/shop/evaluate');
  assert.equal(r.json.verdict, 'critical', r.json.reasons.join('; '));
  assert.match(r.json.reasons.join(' '), /business metric: canary mean/);
  assert.deepEqual(r.json.actions, [{ type: 'rollback' }]);
  assert.ok(r.json.business.relativeChange.high < 0, 'the interval of the change is below zero');
  // After the decision: stored, marked late, nothing reopens.
  const more = await predict(5);
  await eventually(
    async () => {
      const n = (
        await stack.controlPlane.db.pool.query('SELECT count(*) FROM predictions WHERE request_id = ANY($1)', [
          more.map((p) => p.id),
        ])
      ).rows[0].count;
      assert.equal(Number(n), 5);
    },
    10_000,
    100,
  );
  const late = await api('POST', '/v1/feedback', { items: more.map((p) => ({ requestId: p.id, outcome: 1 })) });
  assert.equal(late.json.accepted, 5);
  assert.equal(late.json.late, 5);
  assert.equal((await api('GET', '/v1/deployments/shop')).json.canary, null);
});

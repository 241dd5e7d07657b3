import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { request } from 'undici';
import { spawnCanary } from '../../common/processes.js';
import { eventually, startUpstream } from '../helpers/servers.js';

/**
 * `canary up` as a user runs it: one process, the proxy on its main thread and the control
 * plane (API, analysis, embedded database) on a thread of its own. Everything that crosses
 * between them is exercised through the process's ports: the route table, the proxy's stats,
 * a trip, disagreement-free traffic, and the prediction log, which a graceful stop flushes
 * whole (read back from the data dir afterwards, as `psql` on it would).
 */
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('canary up: routes, stats, a trip and every prediction row cross between the proxy and the control plane threads; SIGTERM loses nothing', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-up-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const answer = (status: number) =>
    startUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(status === 200 ? '{"prediction":"setosa"}' : '{"error":"model crashed"}');
      });
    });
  const [v1, v2, v3] = await Promise.all([answer(200), answer(200), answer(503)]);
  cleanups.push(
    () => v1.close(),
    () => v2.close(),
    () => v3.close(),
  );
  const up = await spawnCanary<{ api: string; proxy: string }>(['up', '--json'], {
    env: {
      CANARY_DATA_DIR: dir,
      CANARY_API_PORT: '0',
      CANARY_PROXY_PORT: '0',
      CANARY_ADMIN_PORT: '0',
      CANARY_PROXY_HOST: '127.0.0.1',
      CANARY_XDS_PORT: 'off',
      CANARY_ANALYSIS_TICK: '200ms',
      CANARY_STATS_FLUSH: '250ms',
      LOG_LEVEL: 'warn',
    },
    isReady: (m) => m.ready === true && m.component === 'up',
    timeoutMs: 120_000,
  });
  cleanups.push(() => up.stop());
  const { api, proxy } = up.ready;
  const call = async (method: string, p: string, body?: unknown) => {
    const r = await request(`${api}${p}`, {
      method: method as 'GET',
      ...(method === 'GET'
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) }),
    });
    return { status: r.statusCode, body: (await r.body.json()) as any };
  };

  const ids = new Set<string>();
  const statuses: number[] = [];
  const send = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await request(`${proxy}/m/predict`, { method: 'POST', body: JSON.stringify({ i }) });
      await r.body.dump();
      statuses.push(r.statusCode);
      ids.add(String(r.headers['x-request-id']));
    }
  };

  // The route table: a deployment created on the control plane's thread is served by the proxy's
  // as soon as the API has answered (the publish returns once the proxy applied it).
  assert.equal(
    (await call('POST', '/v1/deployments', { name: 'm', baseline: { version: 'v1', url: v1.url } })).status,
    201,
  );
  await send(1);
  assert.equal(statuses[0], 200);

  // The proxy's stats reach the analysis on the other thread.
  const started = await call('POST', '/v1/deployments/m/canary', {
    version: 'v2',
    url: v2.url,
    weight: 50,
    policy: { autoPromote: false },
  });
  assert.equal(started.status, 201, JSON.stringify(started.body));
  // (A step's first, partial second is not read: traffic goes on until the counts show.)
  await eventually(
    async () => {
      await send(50);
      const { body } = await call('POST', '/v1/deployments/m/evaluate');
      const counts = { baseline: body.baseline?.requests ?? 0, canary: body.canary?.requests ?? 0 };
      assert.ok(counts.baseline > 100 && counts.canary > 100, JSON.stringify(counts));
    },
    30_000,
    200,
  );
  assert.equal((await call('POST', '/v1/deployments/m/rollback', { reason: 'next canary' })).status, 200);

  // A trip on the proxy's thread becomes the control plane's rollback.
  await call('POST', '/v1/deployments/m/canary', { version: 'v3', url: v3.url, weight: 50 });
  await eventually(
    async () => {
      await send(20);
      const { body } = await call('GET', '/v1/deployments/m/events');
      assert.ok(
        body.events.some((e: { type: string }) => e.type === 'proxy_tripped'),
        body.events.map((e: { type: string }) => e.type).join(' '),
      );
    },
    60_000,
    0,
  );
  await send(500);

  // A graceful stop drains the proxy and writes the prediction log through the other thread.
  await up.stop(60_000);
  assert.equal(up.child.exitCode, 0, 'canary up ended cleanly on SIGTERM');
  const db = await PGlite.create(path.join(dir));
  cleanups.push(() => db.close());
  const { rows } = await db.query<{ n: number; distinct: number }>(
    'SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS distinct FROM predictions WHERE request_id = ANY($1)',
    [[...ids]],
  );
  assert.deepEqual(rows[0], { n: ids.size, distinct: ids.size }, 'every answered request logged once');
  assert.ok(ids.size > 500, `${ids.size} requests`);
});

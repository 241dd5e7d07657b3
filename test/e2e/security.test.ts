import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { threadId } from 'node:worker_threads';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { loadControlPlaneConfig } from '../../common/config.js';
import { type RunningControlPlane, startControlPlane } from '../../control-plane/main.js';
import { DataDirLockedError, startEmbeddedDatabase } from '../../control-plane/state/db.js';
import { eventually, freshSchema, REDIS_URL, silent, startUpstream, testPrefix } from '../helpers/servers.js';

/** The API as an attacker's web page, a careless script and a broken network would meet it. */
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function controlPlane(env: Record<string, string> = {}, databaseUrl?: string): Promise<RunningControlPlane> {
  let url = databaseUrl;
  if (!url) {
    const schema = await freshSchema();
    cleanups.push(() => schema.drop());
    url = schema.url;
  }
  const cp = await startControlPlane(
    loadControlPlaneConfig({
      DATABASE_URL: url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: 'off',
      CANARY_ANALYSIS_TICK: '100ms',
      CANARY_LEADER_LEASE: '1s',
      ...env,
    }),
    { logger: silent },
  );
  cleanups.push(() => cp.close());
  return cp;
}

/** A raw HTTP request, so Host, Origin and content-type are exactly what a test says. */
function raw(cp: RunningControlPlane, method: string, p: string, headers: Record<string, string>, body?: string) {
  return new Promise<{ status: number; json: any }>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: cp.port,
        method,
        path: p,
        headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers },
      },
      (res) => {
        let t = '';
        res.on('data', (d) => {
          t += d;
        });
        res.on('end', () => resolve({ status: res.statusCode!, json: t ? JSON.parse(t) : null }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
const JSON_TYPE = { 'content-type': 'application/json' };

/** Whether this control plane leads the analysis, as its /metrics says (canary_cp_leader). */
async function isLeader(cp: RunningControlPlane): Promise<boolean> {
  const res = await fetch(`${cp.url}/metrics`);
  const m = /^canary_cp_leader (\d+)$/m.exec(await res.text());
  assert.ok(m, 'canary_cp_leader is exported');
  return m[1] === '1';
}

async function withCanary(cp: RunningControlPlane, name: string, token?: string) {
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  assert.equal(
    (
      await raw(
        cp,
        'POST',
        '/v1/deployments',
        { ...JSON_TYPE, ...auth },
        JSON.stringify({ name, baseline: { version: 'v1', url: 'http://127.0.0.1:9101' } }),
      )
    ).status,
    201,
  );
  assert.equal(
    (
      await raw(
        cp,
        'POST',
        `/v1/deployments/${name}/canary`,
        { ...JSON_TYPE, ...auth },
        JSON.stringify({ version: 'v2', url: 'http://127.0.0.1:9102', weight: 10, policy: { interval: '1h' } }),
      )
    ).status,
    201,
  );
}

test('CSRF and DNS rebinding: another origin, a foreign Host, or a non-JSON change are refused and change nothing', async () => {
  const cp = await controlPlane();
  await withCanary(cp, 'iris');
  const status = async () => (await raw(cp, 'GET', '/v1/deployments/iris', {})).json.status;
  const evil = await raw(
    cp,
    'POST',
    '/v1/deployments/iris/pause',
    { ...JSON_TYPE, origin: 'https://evil.example' },
    '{}',
  );
  assert.deepEqual([evil.status, evil.json.error.code], [403, 'FORBIDDEN_ORIGIN']);
  const rebound = await raw(cp, 'POST', '/v1/deployments/iris/pause', { ...JSON_TYPE, host: 'evil.example' }, '{}');
  assert.deepEqual([rebound.status, rebound.json.error.code], [403, 'FORBIDDEN_HOST']);
  const reboundRead = await raw(cp, 'GET', '/v1/deployments', { host: 'evil.example:8090' });
  assert.equal(reboundRead.status, 403, 'a rebound page cannot read either');
  const form = await raw(cp, 'POST', '/v1/deployments/iris/pause', { 'content-type': 'text/plain' }, '{}');
  assert.deepEqual([form.status, form.json.error.code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
  const bare = await raw(cp, 'POST', '/v1/deployments/iris/pause', {});
  assert.equal(bare.status, 415, 'no body and no content-type is a "simple" request too');
  assert.equal(await status(), 'progressing');
  // The API's own origin works (that is the dashboard).
  const own = await raw(cp, 'POST', '/v1/deployments/iris/pause', {
    ...JSON_TYPE,
    origin: `http://127.0.0.1:${cp.port}`,
    host: `127.0.0.1:${cp.port}`,
  });
  assert.equal(own.status, 200);
  assert.equal(await status(), 'paused');
});

test('a web page on another origin, in a real browser, cannot change anything (fetch no-cors, a form post)', async () => {
  const cp = await controlPlane();
  await withCanary(cp, 'victim');
  const page = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<form id="f" method="POST" action="http://127.0.0.1:${cp.port}/v1/deployments/victim/pause" enctype="text/plain"><input name='{"a":"' value='"}'></form>
      <script>
        fetch('http://127.0.0.1:${cp.port}/v1/deployments/victim/pause', { method: 'POST', mode: 'no-cors', body: '{}' }).finally(() => document.getElementById('f').submit());
      </script>`);
  });
  cleanups.push(() => page.close());
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu'],
  });
  cleanups.push(() => browser.close());
  const tab = await browser.newPage();
  await tab.goto(page.url.replace('127.0.0.1', 'localhost'));
  await tab.waitForURL(/\/v1\/deployments\/victim\/pause/, { timeout: 10_000 }); // the form was submitted
  const d = (await raw(cp, 'GET', '/v1/deployments/victim', {})).json;
  assert.equal(d.status, 'progressing', 'the attack changed nothing');
});

test('with a token every /v1 route needs it, reads included; health and the dashboard page do not; sink URLs are masked', async () => {
  const TOKEN = 'a-long-enough-token';
  const cp = await controlPlane({ CANARY_API_TOKEN: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };
  assert.equal((await raw(cp, 'GET', '/v1/deployments', {})).status, 401);
  assert.equal((await raw(cp, 'GET', '/v1/alerts/sinks', {})).status, 401);
  assert.equal((await raw(cp, 'GET', '/v1/deployments', auth)).status, 200);
  for (const p of ['/healthz', '/livez', '/readyz']) assert.equal((await raw(cp, 'GET', p, {})).status, 200, p);
  const page = await new Promise<number>((resolve) =>
    http.get(`${cp.url}/`, (r) => {
      r.resume();
      resolve(r.statusCode!);
    }),
  );
  assert.equal(page, 200);
  const slack = 'https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX';
  const sink = await raw(
    cp,
    'POST',
    '/v1/alerts/sinks',
    { ...JSON_TYPE, ...auth },
    JSON.stringify({ kind: 'slack', url: slack }),
  );
  assert.equal(sink.status, 201);
  assert.equal(sink.json.url, 'https://hooks.slack.com/…');
  const list = await raw(cp, 'GET', '/v1/alerts/sinks', auth);
  assert.ok(!JSON.stringify(list.json).includes('SECRET'));
  const unknown = await raw(
    cp,
    'POST',
    '/v1/alerts/sinks',
    { ...JSON_TYPE, ...auth },
    JSON.stringify({ url: 'http://127.0.0.1:1/x', events: ['nonsense'] }),
  );
  assert.deepEqual([unknown.status, unknown.json.error.code], [400, 'BAD_REQUEST']);
  assert.match(unknown.json.error.message, /events: unknown event type "nonsense"/);
});

test('a strict API: no type coercion, optional bodies optional, every 400 names the field, 413 is BODY_TOO_LARGE', async () => {
  const cp = await controlPlane();
  await withCanary(cp, 'strict');
  const cases: [string, string, string, unknown, RegExp][] = [
    ['weight null', 'PUT', '/v1/deployments/strict/traffic', { weight: null }, /^weight: expected number$/],
    ['weight "10"', 'PUT', '/v1/deployments/strict/traffic', { weight: '10' }, /^weight: expected number$/],
    ['weight 150', 'PUT', '/v1/deployments/strict/traffic', { weight: 150 }, /^weight: must be at most 100$/],
    [
      'name 123',
      'POST',
      '/v1/deployments',
      { name: 123, baseline: { version: 'v1', url: 'http://127.0.0.1:1' } },
      /^name: expected string$/,
    ],
    ['reason 5', 'POST', '/v1/deployments/strict/pause', { canary: 5 }, /^canary: expected string$/],
    [
      'unknown field',
      'POST',
      '/v1/deployments',
      { name: 'x', baseline: { version: 'v1', url: 'http://127.0.0.1:1' }, colour: 'red' },
      /^colour: unknown field$/,
    ],
    ['missing field', 'POST', '/v1/deployments', { name: 'x' }, /^baseline: required$/],
    [
      'bad target',
      'POST',
      '/v1/deployments/strict/rollback',
      { target: 'everything' },
      /^target: expected one of "canary", "baseline"$/,
    ],
  ];
  for (const [what, method, p, body, message] of cases) {
    const r = await raw(cp, method, p, JSON_TYPE, JSON.stringify(body));
    assert.equal(r.status, 400, what);
    assert.equal(r.json.error.code, 'BAD_REQUEST', what);
    assert.match(r.json.error.message, message, `${what}: ${r.json.error.message}`);
    assert.doesNotMatch(r.json.error.message, /body\//, 'no schema paths');
  }
  assert.equal((await raw(cp, 'GET', '/v1/deployments/strict', {})).json.canary.weight, 10, 'nothing changed');
  // Optional bodies are optional: a JSON content-type with no body, and {} alike.
  assert.equal((await raw(cp, 'POST', '/v1/deployments/strict/pause', JSON_TYPE)).status, 200);
  assert.equal((await raw(cp, 'POST', '/v1/deployments/strict/resume', JSON_TYPE, '{}')).status, 200);
  assert.equal((await raw(cp, 'POST', '/v1/deployments/strict/promote', JSON_TYPE)).status, 200);
  const big = await raw(
    cp,
    'POST',
    '/v1/deployments',
    JSON_TYPE,
    JSON.stringify({ name: 'x'.repeat(20 * 1024 * 1024) }),
  );
  assert.deepEqual([big.status, big.json.error.code], [413, 'BODY_TOO_LARGE']);
});

test('a version that was rolled back is used again only with force: true, and the event says it was forced', async () => {
  const cp = await controlPlane();
  await withCanary(cp, 'again');
  assert.equal((await raw(cp, 'POST', '/v1/deployments/again/rollback', JSON_TYPE, '{}')).status, 200);
  const refused = await raw(cp, 'POST', '/v1/deployments/again/canary', JSON_TYPE, JSON.stringify({ version: 'v2' }));
  assert.deepEqual([refused.status, refused.json.error.code], [409, 'VERSION_FAILED']);
  assert.match(refused.json.error.message, /v2 was rolled back.*force: true/);
  assert.equal(
    (await raw(cp, 'POST', '/v1/deployments/again/canary', JSON_TYPE, JSON.stringify({ version: 'v2', force: true })))
      .status,
    201,
  );
  const [e] = (await raw(cp, 'GET', '/v1/deployments/again/events?limit=1', {})).json.events;
  assert.deepEqual([e.type, e.after.forced], ['canary_started', true]);
});

test('the embedded database has one writer: a second process on the same data dir is refused, naming the holder; a crashed holder does not keep it locked', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-lock-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const first = await startEmbeddedDatabase(dir, silent);
  await assert.rejects(
    startEmbeddedDatabase(dir, silent),
    (e: Error) => e instanceof DataDirLockedError && new RegExp(`pid ${process.pid}`).test(e.message),
  );
  await first.close();
  // A lock left by a process that no longer exists.
  await writeFile(
    path.join(dir, 'canary.lock'),
    JSON.stringify({ pid: 999_999_999, host: os.hostname(), startedAt: '2026-01-01T00:00:00Z' }),
  );
  const second = await startEmbeddedDatabase(dir, silent);
  await second.close();
});

test('health tells the truth: /readyz is 503 naming the database while it is unreachable, /livez stays 200; no second leader_changed for the same holder', async () => {
  // PostgreSQL reached through a TCP relay the test can cut, as a network would.
  const schema = await freshSchema();
  cleanups.push(() => schema.drop());
  const target = new URL(schema.url);
  const sockets = new Set<net.Socket>();
  let open = true;
  const relay = net.createServer((client) => {
    if (!open) return client.destroy();
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => relay.close(r)));
  const relayed = new URL(schema.url);
  relayed.port = String((relay.address() as net.AddressInfo).port);
  const cp = await controlPlane({}, relayed.toString());
  await eventually(async () => assert.ok(await isLeader(cp), 'leads the analysis'), 5000);
  assert.equal((await raw(cp, 'GET', '/readyz', {})).status, 200);
  open = false;
  for (const s of sockets) s.destroy();
  await eventually(
    async () => {
      const r = await raw(cp, 'GET', '/readyz', {});
      assert.equal(r.status, 503);
      assert.deepEqual(r.json.failing, ['database']);
    },
    10_000,
    200,
  );
  assert.equal((await raw(cp, 'GET', '/healthz', {})).status, 503);
  assert.equal((await raw(cp, 'GET', '/livez', {})).status, 200);
  await eventually(async () => assert.equal(await isLeader(cp), false), 10_000, 100);
  open = true;
  await eventually(async () => assert.equal((await raw(cp, 'GET', '/readyz', {})).status, 200), 15_000, 200);
  await eventually(async () => assert.ok(await isLeader(cp), 'leads the analysis again'), 15_000, 100);
  const leaders = await cp.db.pool.query(
    `SELECT count(*)::int AS n FROM events WHERE deployment = '*' AND type = 'leader_changed'`,
  );
  assert.equal(leaders.rows[0].n, 1, 'the same replica regaining the lease is not a leader change');
});

test('DELETE what can be created: a deployment with no canary (its audit trail stays), an unused version, an alert sink; a sink can be tested', async () => {
  const cp = await controlPlane();
  await withCanary(cp, 'gone');
  assert.equal((await raw(cp, 'DELETE', '/v1/deployments/gone', JSON_TYPE)).json.error.code, 'CANARY_RUNNING');
  assert.equal(
    (await raw(cp, 'DELETE', '/v1/deployments/gone/versions/v2', JSON_TYPE)).json.error.code,
    'VERSION_IN_USE',
  );
  assert.equal((await raw(cp, 'POST', '/v1/deployments/gone/rollback', JSON_TYPE, '{}')).status, 200);
  assert.equal(
    (await raw(cp, 'DELETE', '/v1/deployments/gone/versions/v1', JSON_TYPE)).json.error.code,
    'VERSION_IN_USE',
  );
  assert.equal((await raw(cp, 'DELETE', '/v1/deployments/gone/versions/v2', JSON_TYPE)).status, 204);
  assert.equal((await raw(cp, 'DELETE', '/v1/deployments/gone', JSON_TYPE)).status, 204);
  assert.equal((await raw(cp, 'GET', '/v1/deployments/gone', {})).status, 404);
  const trail = await cp.db.pool.query(`SELECT type FROM events WHERE deployment = 'gone' ORDER BY id DESC`);
  assert.deepEqual(
    trail.rows.slice(0, 2).map((r) => r.type),
    ['deployment_deleted', 'version_deleted'],
  );

  const got: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const hook = await startUpstream((req, res) => {
    let b = '';
    req.on('data', (d) => {
      b += d;
    });
    req.on('end', () => {
      got.push({ headers: req.headers, body: b });
      res.end('ok');
    });
  });
  cleanups.push(() => hook.close());
  const sink = await raw(
    cp,
    'POST',
    '/v1/alerts/sinks',
    JSON_TYPE,
    JSON.stringify({ url: `${hook.url}/hook`, secret: 'a-secret-of-length' }),
  );
  const tested = await raw(cp, 'POST', `/v1/alerts/sinks/${sink.json.id}/test`, JSON_TYPE);
  assert.equal(tested.status, 200);
  assert.equal(tested.json.delivered, true);
  assert.equal(tested.json.httpStatus, 200);
  assert.equal(got.length, 1);
  assert.equal(JSON.parse(got[0].body).test, true);
  assert.equal(got[0].headers['x-canary-event'], 'test');
  assert.ok(got[0].headers['x-canary-signature']);
  assert.equal((await raw(cp, 'DELETE', `/v1/alerts/sinks/${sink.json.id}`, JSON_TYPE)).status, 204);
  assert.equal(
    (await raw(cp, 'DELETE', `/v1/alerts/sinks/${sink.json.id}`, JSON_TYPE)).json.error.code,
    'SINK_NOT_FOUND',
  );
});

test("server-side request forgery: version and sink URLs never point at link-local/metadata addresses or the stack's own services; CANARY_UPSTREAM_ALLOW narrows the rest", async () => {
  const cp = await controlPlane();
  const create = (url: string) =>
    raw(
      cp,
      'POST',
      '/v1/deployments',
      JSON_TYPE,
      JSON.stringify({ name: `d${Math.random().toString(36).slice(2, 8)}`, baseline: { version: 'v1', url } }),
    );
  for (const url of [
    'http://127.0.0.1:6379',
    `http://127.0.0.1:${new URL(process.env.DATABASE_URL ?? 'postgres://x@127.0.0.1:5432/test').port || 5432}`,
    `http://localhost:${cp.port}`,
    'http://169.254.169.254/latest/meta-data',
    'http://metadata.google.internal/',
  ]) {
    const r = await create(url);
    assert.deepEqual([r.status, r.json.error.code], [400, 'UPSTREAM_NOT_ALLOWED'], url);
  }
  assert.equal((await create('http://127.0.0.1:9101')).status, 201, 'an ordinary local model server is fine');
  const sink = await raw(
    cp,
    'POST',
    '/v1/alerts/sinks',
    JSON_TYPE,
    JSON.stringify({ url: 'http://169.254.169.254/hook' }),
  );
  assert.deepEqual([sink.status, sink.json.error.code], [400, 'UPSTREAM_NOT_ALLOWED']);

  const narrow = await controlPlane({ CANARY_UPSTREAM_ALLOW: '10.0.0.0/8,models.internal' });
  const r = await raw(
    narrow,
    'POST',
    '/v1/deployments',
    JSON_TYPE,
    JSON.stringify({ name: 'narrow', baseline: { version: 'v1', url: 'http://127.0.0.1:9101' } }),
  );
  assert.deepEqual([r.status, r.json.error.code], [400, 'UPSTREAM_NOT_ALLOWED']);
  assert.match(r.json.error.message, /not in CANARY_UPSTREAM_ALLOW/);
  assert.equal(
    (
      await raw(
        narrow,
        'POST',
        '/v1/deployments',
        JSON_TYPE,
        JSON.stringify({ name: 'inside', baseline: { version: 'v1', url: 'http://10.1.2.3:8000' } }),
      )
    ).status,
    201,
  );
});

test('the embedded database runs in its own thread: a crash of it is logged, queries fail at once (no hang), and it is restarted with the data kept', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-crash-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const db = await startEmbeddedDatabase(dir, logger);
  cleanups.push(() => db.close());
  await db.pool.query('CREATE TABLE kept (n int)');
  await db.pool.query('INSERT INTO kept VALUES (1), (2)');
  assert.ok(db.server?.thread, 'a worker thread serves the database');
  assert.notEqual(db.server.thread.threadId, threadId, 'not the main thread');
  // A crash, as an abort inside the WebAssembly engine would end the thread.
  await db.server.thread.terminate();
  const failed = await db.pool.query('SELECT 1').then(
    () => null,
    (err: Error) => err,
  );
  assert.ok(failed, 'a query while the database is down fails (it does not wait on a dead thread)');
  await eventually(
    async () => {
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM kept');
      assert.equal(rows[0].n, 2);
    },
    60_000,
    200,
  );
  assert.ok(
    lines.some((l) => l.level >= 50 && /embedded PostgreSQL crashed/.test(l.msg)),
    'the crash is logged as an error',
  );
  assert.ok(lines.some((l) => /embedded PostgreSQL restarted/.test(l.msg)));
  assert.equal(db.server.restarts, 1);
});

test('canary up on the embedded database: a crash of its thread mid-traffic loses no prediction row and fails no user request', async () => {
  const { startStack } = await import('../../control-plane/main.js');
  const { loadProxyConfig } = await import('../../common/config.js');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-up-crash-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const model = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('{"prediction":"setosa"}'));
  });
  cleanups.push(() => model.close());
  const stack = await startStack(
    loadControlPlaneConfig({ CANARY_DATA_DIR: dir, CANARY_API_PORT: '0', CANARY_XDS_PORT: 'off' }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
  cleanups.push(() => stack.close());
  const created = await fetch(`${stack.controlPlane.url}/v1/deployments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'm', baseline: { version: 'v1', url: model.url } }),
  });
  assert.equal(created.status, 201);
  await eventually(async () => assert.equal((await fetch(`${stack.proxy.url}/m/predict`)).status, 200), 10_000);
  const ids = new Set<string>();
  const statuses: number[] = [];
  for (let i = 0; i < 3000; i++) {
    if (i === 1000) await stack.controlPlane.db.server!.thread!.terminate(); // the crash, mid-traffic
    const r = await fetch(`${stack.proxy.url}/m/predict`, { method: 'POST', body: JSON.stringify({ i }) });
    await r.arrayBuffer();
    statuses.push(r.status);
    ids.add(r.headers.get('x-request-id')!);
  }
  assert.equal(ids.size, 3000);
  assert.deepEqual(
    statuses.filter((s) => s !== 200),
    [],
    'users never wait on the database',
  );
  await eventually(
    async () => {
      const { rows } = await stack.controlPlane.db.pool.query<{ n: number; distinct: number }>(
        'SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS distinct FROM predictions WHERE request_id = ANY($1)',
        [[...ids]],
      );
      assert.deepEqual(rows[0], { n: 3000, distinct: 3000 }, 'every answered request logged once');
    },
    90_000,
    500,
  );
  assert.equal(stack.controlPlane.db.server!.restarts, 1);
});

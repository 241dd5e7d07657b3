import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { CANARY_BIN } from '../../common/processes.js';
import { type RunningStack, startStack } from '../../control-plane/main.js';
import {
  closedPort,
  eventually,
  freshSchema,
  REDIS_URL,
  route,
  silent,
  startTestProxy,
  startUpstream,
  testPrefix,
} from '../helpers/servers.js';

// Third-party model servers behind the proxy, as a new user puts them there: servers under a
// path prefix, servers that redirect, servers without a health endpoint (python3 -m http.server).

const run = promisify(execFile);
const cleanups: (() => Promise<unknown>)[] = [];
let stack: RunningStack;
before(async () => {
  const schema = await freshSchema();
  cleanups.push(() => schema.drop());
  stack = await startStack(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: 'off',
      CANARY_PROBE_INTERVAL: '200ms',
      CANARY_CLIENT_HEADER_TIMEOUT: '2s',
    }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
  cleanups.push(() => stack.close());
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const api = async (method: string, path: string, body?: unknown) => {
  const r = await request(`${stack.controlPlane.url}${path}`, {
    method: method as 'GET',
    headers: { 'content-type': 'application/json' },
    body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
  });
  return { status: r.statusCode, json: (await r.body.json()) as any };
};
const routed = (name: string) =>
  eventually(() => assert.ok(stack.proxy.table().deployments[name], `${name} reached the proxy`), 10_000);

test('a version URL keeps its path prefix: /iris/predict?x=1 reaches /models/iris/predict?x=1; a query or fragment in the URL is refused naming the field', async () => {
  const seen: string[] = [];
  const model = await startUpstream((req, res) => {
    // The version probe's GETs (the health paths under the prefix) are not the proxy's: left out.
    if (req.method !== 'GET') seen.push(req.url ?? '');
    res.end('{"prediction":"setosa"}');
  });
  cleanups.push(() => model.close());
  const created = await api('POST', '/v1/deployments', {
    name: 'prefixed',
    baseline: { version: 'v1', url: `${model.url}/models/iris/` },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.baseline.url, `${model.url}/models/iris`);
  await routed('prefixed');
  const r = await request(`${stack.proxy.url}/prefixed/predict?x=1`, { method: 'POST', body: '{}' });
  await r.body.dump();
  assert.equal(r.statusCode, 200);
  assert.deepEqual(seen, ['/models/iris/predict?x=1']);
  for (const [url, field] of [
    [`${model.url}/models?debug=1`, 'url'],
    [`${model.url}/models#v2`, 'url'],
  ]) {
    const bad = await api('POST', '/v1/deployments/prefixed/versions', { version: 'v2', url });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'BAD_REQUEST');
    assert.match(bad.json.error.message, new RegExp(`^${field}: a query string or fragment is not allowed`));
  }
});

test('gateway mode maps a model’s redirects into the deployment and sends X-Forwarded-Prefix; sidecar mode changes nothing', async () => {
  const prefixes: (string | undefined)[] = [];
  const model = await startUpstream((req, res) => {
    // Requests through a proxy (it adds X-Forwarded-For), not the control plane's health probes.
    if (req.headers['x-forwarded-for']) prefixes.push(req.headers['x-forwarded-prefix'] as string | undefined);
    const to: Record<string, string> = {
      '/models/a/relative': '/models/a/hello',
      '/models/a/root': '/elsewhere?q=1',
      '/models/a/absolute': `http://${req.headers.host}/models/a/done`,
      '/models/a/foreign': 'https://example.com/x',
      '/models/a/sibling': 'next',
    };
    res.writeHead(302, { location: to[req.url ?? ''] ?? '/', 'content-location': '/models/a/doc' });
    res.end();
  });
  cleanups.push(() => model.close());
  assert.equal(
    (await api('POST', '/v1/deployments', { name: 'redir', baseline: { version: 'v1', url: `${model.url}/models/a` } }))
      .status,
    201,
  );
  await routed('redir');
  const expected: Record<string, string> = {
    relative: '/redir/hello',
    root: '/redir/elsewhere?q=1',
    absolute: '/redir/done',
    foreign: 'https://example.com/x',
    sibling: 'next',
  };
  for (const [path, location] of Object.entries(expected)) {
    const r = await request(`${stack.proxy.url}/redir/${path}`);
    await r.body.dump();
    assert.equal(r.statusCode, 302);
    assert.equal(r.headers.location, location, path);
    assert.equal(r.headers['content-location'], '/redir/doc');
  }
  assert.ok(
    prefixes.every((p) => p === '/redir'),
    `X-Forwarded-Prefix: ${prefixes.join(', ')}`,
  );

  const sidecar = await startTestProxy(
    { deployments: { redir: route('redir', `${model.url}/models/a`, null) } },
    { config: { deployment: 'redir' } },
  );
  cleanups.push(() => sidecar.close());
  prefixes.length = 0;
  const r = await request(`${sidecar.url}/relative`);
  await r.body.dump();
  assert.equal(r.headers.location, '/models/a/hello', 'sidecar mode passes the model’s Location through');
  assert.deepEqual(prefixes, [undefined]);
});

/** A Flask model server with /predict and nothing else (Debian's python3-flask, installed by .ci/run). */
const FLASK_APP = `
import sys
from flask import Flask, jsonify
app = Flask(__name__)
@app.post('/predict')
def predict():
    return jsonify(prediction='setosa')
app.run(host='127.0.0.1', port=int(sys.argv[1]))
`;

/**
 * A model server with no health endpoint at all, on a free port: `python3 -m http.server`, or a
 * Flask app that knows only /predict.
 */
async function pythonServer(kind: 'http.server' | 'flask'): Promise<{ url: string; proc: ChildProcess }> {
  const port = await closedPort();
  const args =
    kind === 'flask' ? ['-c', FLASK_APP, String(port)] : ['-m', 'http.server', String(port), '--bind', '127.0.0.1'];
  const proc = spawn('python3', args, { stdio: 'ignore' });
  cleanups.push(async () => proc.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => assert.ok((await request(url)).statusCode < 500, `${kind} answers`), 20_000, 100);
  return { url, proc };
}

test('emergency baseline rollback works with Flask and python3 -m http.server versions (no /healthz), and a failing probe only warns', async () => {
  const [s1, s2] = await Promise.all([pythonServer('flask'), pythonServer('http.server')]);
  const env = { ...process.env, CANARY_API_URL: stack.controlPlane.url, NO_COLOR: '1' };
  const cli = async (...args: string[]) => (await run(process.execPath, [CANARY_BIN, ...args], { env })).stdout;
  await cli('deploy', 'files', '--version', 's1', '--url', s1.url);
  await cli('start', 'files', '--version', 's2', '--url', s2.url, '--weight', '10');
  await cli('promote', 'files');
  // The prober tried /healthz, /health, /v2/health/ready and /ping: 404 everywhere, but the server answers.
  await eventually(
    async () => {
      const versions = (await api('GET', '/v1/deployments/files/versions')).json.versions;
      assert.deepEqual(
        versions.map((v: { version: string; healthy: boolean | null }) => [v.version, v.healthy]),
        [
          ['s2', true],
          ['s1', true],
        ],
      );
    },
    20_000,
    100,
  );
  assert.match(await cli('rollback', 'files', '--baseline'), /rolled back: baseline is s1/);
  // s2 was rolled back: using it again takes --force.
  assert.match(await cli('rollback', 'files', '--to', 's2', '--force'), /rolled back: baseline is s2/);
  // Now s1's server is gone (and s1 was rolled back, so it takes --force too): its probe fails —
  // a warning in the answer and the event, not a refusal.
  s1.proc.kill('SIGKILL');
  await eventually(
    async () => {
      const v = (await api('GET', '/v1/deployments/files/versions')).json.versions.find(
        (x: { version: string }) => x.version === 's1',
      );
      assert.equal(v.healthy, false, JSON.stringify(v));
    },
    20_000,
    100,
  );
  const out = await cli('rollback', 'files', '--to', 's1', '--force');
  assert.match(out, /rolled back: baseline is s1/);
  assert.match(out, /warning: version s1 failed its last health probe/);
  const event = (await api('GET', '/v1/deployments/files/events?limit=1')).json.events[0];
  assert.equal(event.type, 'rolled_back');
  assert.match(JSON.stringify(event.after.warnings), /failed its last health probe/);
});

test('health: {path} names the probe, and {path: null} turns it off', async () => {
  const up = await startUpstream((req, res) => {
    res.writeHead(req.url === '/models/m/ready' ? 200 : 503).end();
  });
  cleanups.push(() => up.close());
  const created = await api('POST', '/v1/deployments', {
    name: 'probed',
    baseline: { version: 'v1', url: `${up.url}/models/m` },
    health: { path: '/ready' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.deepEqual(created.json.health, { path: '/ready' });
  await eventually(
    async () => assert.equal((await api('GET', '/v1/deployments/probed/versions')).json.versions[0].healthy, true),
    20_000,
    100,
  );
  const off = await api('PATCH', '/v1/deployments/probed', { health: { path: null } });
  assert.deepEqual(off.json.health, { path: null });
  const bad = await api('PATCH', '/v1/deployments/probed', { health: { path: 'ready' } });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /^health\.path:/);
});

test('client header timeouts hold on every port (data, admin, API): sockets trickling header lines are closed', async (t) => {
  const model = await startUpstream((_req, res) => res.end('ok'));
  cleanups.push(() => model.close());
  const proxy = await startTestProxy(
    { deployments: { m: route('m', model.url, null) } },
    { config: { clientHeaderTimeoutMs: 2000, clientRequestTimeoutMs: 3000 } },
  );
  cleanups.push(() => proxy.close());
  const ports = [Number(new URL(proxy.url).port), proxy.adminPort, stack.controlPlane.port];
  const t0 = Date.now();
  const closed = await Promise.all(
    Array.from({ length: 150 }, async (_, n) => {
      const port = ports[n % ports.length];
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write('GET /m/x HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      // One header line every 200 ms for 15 s: only the server's timeout ends this sooner. (Node's
      // default check runs every 30 s, so a 2 s timeout unchecked would outlast it.)
      for (let i = 0; i < 75 && !s.destroyed && s.writable; i++) {
        s.write(`X-Trickle-${i}: 1\r\n`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const byProxy = s.destroyed || !s.writable || s.readableEnded;
      s.destroy();
      return byProxy;
    }),
  );
  t.diagnostic(`all 150 closed after ${Date.now() - t0} ms (header timeout 2 s, checked every second)`);
  assert.deepEqual(
    closed.filter((c) => !c),
    [],
    'every trickling socket was closed by the proxy',
  );
});

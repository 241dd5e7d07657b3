import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { request } from 'undici';
import type { StaticRouteSource } from '../../proxy/split/sources/static-source.js';
import {
  blast,
  closedPort,
  echoUpstream,
  get,
  post,
  rawHttp,
  route,
  startTestProxy,
  startUpstream,
} from '../helpers/servers.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(canaryWeight = 20, extra: Record<string, unknown> = {}, config = {}) {
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary');
  const proxy = await startTestProxy(
    { version: 1, deployments: { iris: route('iris', base.url, can.url, canaryWeight, extra) } },
    { config },
  );
  cleanups.push(
    () => base.close(),
    () => can.close(),
    () => proxy.close(),
  );
  return { base, can, proxy };
}

test('splits 20% to the canary over 10,000 requests within ±1.6 points (4 standard deviations), tagging every response', async () => {
  const { proxy } = await setup(20);
  const results = await blast(10_000, 32, async () => {
    const res = await request(`${proxy.url}/iris/predict`, {
      method: 'POST',
      body: '{"x":1}',
      headers: { 'content-type': 'application/json' },
    });
    const body = (await res.body.json()) as { who: string };
    assert.equal(res.headers['x-canary-variant'], body.who);
    assert.equal(res.headers['x-canary-version'], body.who === 'canary' ? 'v2' : 'v1');
    return { status: res.statusCode, variant: body.who };
  });
  assert.ok(results.every((r) => r.status === 200));
  const share = results.filter((r) => r.variant === 'canary').length / 100;
  assert.ok(Math.abs(share - 20) <= 1.6, `canary share ${share}%`);
});

test('0% and 100% are exact through the proxy', async () => {
  for (const [w, who] of [
    [0, 'baseline'],
    [100, 'canary'],
  ] as const) {
    const { proxy } = await setup(w);
    const results = await blast(500, 16, async () => {
      const r = await get(`${proxy.url}/iris/x`);
      return { status: r.status, variant: r.json().who };
    });
    assert.ok(
      results.every((r) => r.variant === who),
      `weight ${w}`,
    );
  }
});

test('gateway mode strips the deployment; sidecar mode forwards the path unchanged', async () => {
  const { proxy, base, can } = await setup(0);
  const r = await get(`${proxy.url}/iris/v1/models/iris:predict?q=1`);
  assert.equal(r.json().path, '/v1/models/iris:predict?q=1');
  assert.equal(r.json().headers['x-forwarded-prefix'], '/iris');
  // Named in a header (as a gRPC client does), the path goes as it is: no prefix to strip or announce.
  const named = await get(`${proxy.url}/v1/models/iris:predict`, { 'x-canary-deployment': 'iris' });
  assert.equal(named.json().path, '/v1/models/iris:predict');
  assert.equal(named.json().headers['x-forwarded-prefix'], undefined);
  const side = await startTestProxy(
    { deployments: { iris: route('iris', base.url, can.url, 0) } },
    { config: { deployment: 'iris' } },
  );
  cleanups.push(() => side.close());
  const s = await get(`${side.url}/iris/predict?a=b`);
  assert.equal(s.json().path, '/iris/predict?a=b');
});

test('an unknown deployment gets 404 with a JSON error', async () => {
  const { proxy } = await setup();
  const r = await get(`${proxy.url}/nope/predict`);
  assert.equal(r.status, 404);
  assert.equal(r.json().error.code, 'UNKNOWN_DEPLOYMENT');
});

test('x-request-id is added when absent and kept when given; hop-by-hop headers are dropped', async () => {
  const { proxy } = await setup(0);
  // Raw HTTP so the client library cannot rewrite the Connection header.
  const raw = await rawHttp(
    proxy.port,
    'GET /iris/x HTTP/1.1\r\nhost: a\r\nx-custom: yes\r\nx-hop: secret\r\nkeep-alive: timeout=5\r\nconnection: close, x-hop\r\n\r\n',
  );
  const [head, body] = raw.split('\r\n\r\n');
  const seen = JSON.parse(body).headers;
  const rid = /x-request-id: (.*)/i.exec(head)![1].trim();
  assert.match(rid, /^[0-9a-f-]{36}$/);
  assert.equal(seen['x-request-id'], rid);
  assert.equal(seen['x-custom'], 'yes');
  assert.equal(seen['x-hop'], undefined);
  assert.equal(seen['keep-alive'], undefined);
  const given = await get(`${proxy.url}/iris/x`, { 'x-request-id': 'abc-123' });
  assert.equal(given.headers['x-request-id'], 'abc-123');
  assert.equal(given.json().headers['x-request-id'], 'abc-123');
});

test('sticky keys land on one variant', async () => {
  const { proxy } = await setup(50);
  for (let k = 0; k < 20; k++) {
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++)
      seen.add(String((await get(`${proxy.url}/iris/x`, { 'x-canary-key': `user-${k}` })).headers['x-canary-variant']));
    assert.equal(seen.size, 1);
  }
});

test('a 4xx from the model is passed through and counted as a client error, not a model error', async () => {
  const base = await echoUpstream('baseline', 422);
  const proxy = await startTestProxy({ deployments: { m: route('m', base.url, null) } });
  cleanups.push(
    () => base.close(),
    () => proxy.close(),
  );
  for (let i = 0; i < 10; i++) assert.equal((await get(`${proxy.url}/m/x`)).status, 422);
  await proxy.flushStats();
  const s = await proxy.stats.read('m', 'v1', Date.now() - 60_000, Date.now());
  assert.deepEqual([s.requests, s.modelErrors, s.clientErrors], [10, 0, 10]);
});

test('a failing canary is retried once on the baseline; the failure counts against the canary, the retry is not an analysed baseline request', async () => {
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary', 503);
  const proxy = await startTestProxy({ deployments: { m: route('m', base.url, can.url, 100) } });
  cleanups.push(
    () => base.close(),
    () => can.close(),
    () => proxy.close(),
  );
  const r = await post(`${proxy.url}/m/predict`, { features: 1 });
  assert.equal(r.status, 200);
  assert.equal(r.json().who, 'baseline');
  assert.equal(r.json().bodyBytes, 14, 'the buffered body is resent');
  assert.equal(r.headers['x-canary-variant'], 'baseline');
  assert.equal(r.headers['x-canary-retried-from'], 'v2');
  await proxy.flushStats();
  const c = await proxy.stats.read('m', 'v2', Date.now() - 60_000, Date.now());
  const b = await proxy.stats.read('m', 'v1', Date.now() - 60_000, Date.now());
  // The retry is not a routing draw: the analysis must not count it as a baseline request.
  assert.deepEqual([c.requests, c.modelErrors, b.requests, b.modelErrors], [1, 1, 0, 0]);
  const metrics = (await get(`${proxy.adminUrl}/metrics`)).text;
  assert.match(
    metrics,
    /canary_proxy_requests_total\{deployment="m",version="v1",role="baseline",outcome="success"\} 1/,
    'but /metrics shows it',
  );
});

test('with retry off, the canary 5xx reaches the client as is', async () => {
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary', 500);
  const proxy = await startTestProxy({
    deployments: { m: route('m', base.url, can.url, 100, { retryCanaryOnBaseline: false }) },
  });
  cleanups.push(
    () => base.close(),
    () => can.close(),
    () => proxy.close(),
  );
  const r = await get(`${proxy.url}/m/x`);
  assert.equal(r.status, 500);
  assert.equal(r.headers['x-canary-variant'], 'canary');
});

test('upstream down: 502 with a JSON error, counted as a connection error', async () => {
  const port = await closedPort();
  const proxy = await startTestProxy({ deployments: { m: route('m', `http://127.0.0.1:${port}`, null) } });
  cleanups.push(() => proxy.close());
  const r = await get(`${proxy.url}/m/x`);
  assert.equal(r.status, 502);
  assert.equal(r.json().error.code, 'UPSTREAM_UNAVAILABLE');
  await proxy.flushStats();
  assert.equal((await proxy.stats.read('m', 'v1', Date.now() - 60_000, Date.now())).modelErrors, 1);
  const metrics = await get(`${proxy.adminUrl}/metrics`);
  assert.match(
    metrics.text,
    /canary_proxy_requests_total\{deployment="m",version="v1",role="baseline",outcome="connection_error"\} 1/,
  );
});

test('upstream slow: 504 after the configured timeout, counted as a timeout', async () => {
  // The model answers only once the test lets it: a 504 that arrives first cannot have waited for it.
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const slow = await startUpstream(async (_req, res) => {
    await held;
    res.end('late');
  });
  const proxy = await startTestProxy(
    { deployments: { m: route('m', slow.url, null) } },
    { config: { upstreamTimeoutMs: 150 } },
  );
  cleanups.push(
    () => slow.close(),
    () => proxy.close(),
  );
  const r = await get(`${proxy.url}/m/x`);
  assert.equal(r.status, 504);
  assert.equal(r.json().error.code, 'UPSTREAM_TIMEOUT');
  release();
  const metrics = await get(`${proxy.adminUrl}/metrics`);
  assert.match(metrics.text, /outcome="timeout"\} 1/);
});

test('upstream resetting the connection: 502, and the proxy keeps serving', async () => {
  const reset = await startUpstream((req) => req.socket.destroy());
  const proxy = await startTestProxy({ deployments: { m: route('m', reset.url, null) } });
  cleanups.push(
    () => reset.close(),
    () => proxy.close(),
  );
  for (let i = 0; i < 5; i++) assert.equal((await get(`${proxy.url}/m/x`)).status, 502);
  assert.equal((await get(`${proxy.adminUrl}/healthz`)).status, 200);
});

test('upstream returning garbage instead of HTTP: 502 UPSTREAM_BAD_RESPONSE, counted as a model error', async () => {
  const garbage = net.createServer((s) => {
    s.on('data', () => s.end('NOT HTTP AT ALL\r\n\r\n'));
  });
  await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
  const port = (garbage.address() as net.AddressInfo).port;
  const proxy = await startTestProxy({ deployments: { m: route('m', `http://127.0.0.1:${port}`, null) } });
  cleanups.push(
    () => new Promise((r) => garbage.close(() => r())),
    () => proxy.close(),
  );
  const r = await get(`${proxy.url}/m/x`);
  assert.equal(r.status, 502);
  assert.equal(r.json().error.code, 'UPSTREAM_BAD_RESPONSE');
  await proxy.flushStats();
  assert.equal((await proxy.stats.read('m', 'v1', Date.now() - 60_000, Date.now())).modelErrors, 1);
});

test('an oversized body gets 413 before reaching the model, by Content-Length or while streaming', async () => {
  const { proxy } = await setup(0, {}, { maxBodyBytes: 1000, bufferBodyBytes: 100 });
  const big = await post(`${proxy.url}/iris/predict`, 'x'.repeat(5000));
  assert.equal(big.status, 413);
  assert.equal(big.json().error.code, 'BODY_TOO_LARGE');
  // chunked, no Content-Length: counted as it streams
  const res = await request(`${proxy.url}/iris/predict`, {
    method: 'POST',
    body: Readable.from(
      (function* () {
        for (let i = 0; i < 20; i++) yield Buffer.alloc(100, 'a');
      })(),
    ),
  });
  assert.equal(res.statusCode, 413);
  await res.body.dump();
  const ok = await post(`${proxy.url}/iris/predict`, 'y'.repeat(900));
  assert.equal(ok.status, 200);
  assert.equal(ok.json().bodyBytes, 900);
});

test('large bodies stream through to the model intact', async () => {
  const { proxy } = await setup(0, {}, { bufferBodyBytes: 1024 });
  const r = await post(`${proxy.url}/iris/upload`, Buffer.alloc(2_000_000, 7));
  assert.equal(r.json().bodyBytes, 2_000_000);
});

test('a malformed request target gets 400 with a JSON error', async () => {
  const { proxy } = await setup();
  const raw = await rawHttp(proxy.port, 'GET /%E0%A4%A/x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
  assert.match(raw, /^HTTP\/1.1 400/);
  assert.match(raw, /BAD_REQUEST_TARGET/);
  const garbage = await rawHttp(proxy.port, 'BLAH\r\n\r\n');
  assert.match(garbage, /^HTTP\/1.1 400/);
});

test('the admin port reports readiness, routes and metrics', async () => {
  const { proxy } = await setup(20);
  const ready = await get(`${proxy.adminUrl}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(ready.json().routeTableVersion, 1);
  assert.equal((await get(`${proxy.adminUrl}/routes`)).json().deployments.iris.canary.weight, 20);
  await get(`${proxy.url}/iris/x`);
  const m = (await get(`${proxy.adminUrl}/metrics`)).text;
  assert.match(m, /canary_proxy_canary_weight_percent\{deployment="iris"\} 20/);
  assert.match(m, /canary_proxy_route_table_version 1/);
  assert.match(m, /canary_proxy_request_duration_seconds_bucket/);
});

test('graceful shutdown finishes in-flight requests and flushes stats', async () => {
  const slow = await startUpstream((_req, res) => {
    setTimeout(() => res.end('done'), 300);
  });
  const proxy = await startTestProxy(
    { deployments: { m: route('m', slow.url, null) } },
    { config: { statsFlushMs: 60_000 } },
  );
  cleanups.push(() => slow.close());
  const inflight = get(`${proxy.url}/m/x`);
  await new Promise((r) => setTimeout(r, 50));
  await proxy.close();
  const r = await inflight;
  assert.equal(r.status, 200);
  assert.equal(r.text, 'done');
  assert.equal((await proxy.stats.read('m', 'v1', Date.now() - 60_000, Date.now())).requests, 1);
});

test('a route change from the source applies to the next request', async () => {
  const { proxy, base, can } = await setup(0);
  (proxy.source as StaticRouteSource).set({ version: 2, deployments: { iris: route('iris', base.url, can.url, 100) } });
  assert.equal((await get(`${proxy.url}/iris/x`)).headers['x-canary-variant'], 'canary');
});

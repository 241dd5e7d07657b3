import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import type { ProxyConfig } from '../../common/config.js';
import type { StaticRouteSource } from '../../proxy/split/sources/static-source.js';
import { echoUpstream, eventually, get, route, startTestProxy, startUpstream } from '../helpers/servers.js';

/** The proxy as real clients and hostile sockets meet it: all over loopback, real servers on port 0. */
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Upstream timeouts no test waits out: whatever closes a request sooner is not a timeout. */
const LONG_TIMEOUTS: Partial<ProxyConfig> = { upstreamTimeoutMs: 600_000, upstreamBodyTimeoutMs: 600_000 };

async function setup(
  weight: number,
  config: Partial<ProxyConfig> = {},
  upstreams?: { base?: { url: string; close(): Promise<void> }; can?: { url: string; close(): Promise<void> } },
) {
  const base = upstreams?.base ?? (await echoUpstream('baseline'));
  const can = upstreams?.can ?? (await echoUpstream('canary'));
  const proxy = await startTestProxy(
    { version: 1, deployments: { iris: route('iris', base.url, can.url, weight) } },
    { config },
  );
  cleanups.push(
    () => base.close(),
    () => can.close(),
    () => proxy.close(),
  );
  return { base, can, proxy };
}

/** The proxy's request counter for one version and outcome, from its own /metrics. */
async function counted(adminUrl: string, version: string, outcome: string): Promise<number> {
  const text = (await get(`${adminUrl}/metrics`)).text;
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('canary_proxy_requests_total{') &&
        l.includes(`version="${version}"`) &&
        l.includes(`outcome="${outcome}"`),
    );
  return line ? Number(line.split(' ').at(-1)) : 0;
}

test('curl uploading 1.5 MB sends Expect: 100-continue; the body is delivered and nothing is charged to a model', async () => {
  const { proxy } = await setup(50);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-expect-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'big.json');
  await writeFile(file, JSON.stringify({ blob: 'x'.repeat(1_500_000) }));
  for (let i = 0; i < 8; i++) {
    const { stdout, stderr } = await run('curl', [
      '-sS',
      '-v',
      '-H',
      'content-type: application/json',
      '--data-binary',
      `@${file}`,
      `${proxy.url}/iris/upload`,
    ]);
    assert.match(stderr, /Expect: 100-continue/i, 'curl sent Expect');
    assert.match(stderr, /HTTP\/1\.1 100 Continue/i, 'the proxy answered 100 Continue');
    const body = JSON.parse(stdout);
    assert.equal(body.bodyBytes, 1_500_011);
    assert.equal(body.headers.expect, undefined, 'the model server gets an ordinary request');
  }
  for (const v of ['v1', 'v2'])
    for (const o of ['server_error', 'connection_error', 'timeout'])
      assert.equal(await counted(proxy.adminUrl, v, o), 0, `${v} ${o}`);
});

test('a client that gives up before the answer aborts the upstream request (the model never answers, and no timeout could close it), and it is not a model error', async () => {
  let upstreamClosedAt = 0;
  const hanging = await startUpstream((_req, res) => {
    res.once('close', () => {
      upstreamClosedAt = performance.now();
    });
  });
  // Timeouts of ten minutes: only the client's leaving can close the upstream request in this test.
  const { proxy } = await setup(0, LONG_TIMEOUTS, { base: hanging });
  const ac = new AbortController();
  const pending = fetch(`${proxy.url}/iris/slow`, { signal: ac.signal }).catch(() => null);
  await sleep(300);
  ac.abort();
  await pending;
  await eventually(() => assert.ok(upstreamClosedAt > 0, 'the upstream request was closed'), 60_000);
  await eventually(async () => assert.equal(await counted(proxy.adminUrl, 'v1', 'aborted'), 1));
  assert.equal(await counted(proxy.adminUrl, 'v1', 'timeout'), 0);
});

test('a client that leaves mid-stream aborts the upstream (no timeout could close it) and is counted as aborted, not against the model', async () => {
  let upstreamClosed!: Promise<number>;
  const streaming = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: one\n\n');
    upstreamClosed = new Promise((r) => res.once('close', () => r(performance.now())));
  });
  const { proxy } = await setup(0, LONG_TIMEOUTS, { base: streaming });
  // A plain client that reads the first event and hangs up (closes its socket).
  const first = await new Promise<{ chunk: string; req: http.ClientRequest }>((resolve, reject) => {
    const req = http.get(`${proxy.url}/iris/stream`, (res) =>
      res.once('data', (d) => resolve({ chunk: String(d), req })),
    );
    req.on('error', () => {});
    setTimeout(() => reject(new Error('no first event')), 2000).unref();
  });
  assert.match(first.chunk, /data: one/, 'the first event arrives unbuffered');
  first.req.destroy();
  await upstreamClosed; // the model's stream is closed by the client's leaving alone
  await eventually(async () => assert.equal(await counted(proxy.adminUrl, 'v1', 'aborted'), 1));
  for (const o of ['server_error', 'connection_error', 'timeout'])
    assert.equal(await counted(proxy.adminUrl, 'v1', o), 0, o);
});

test('a model that stalls mid-stream longer than the idle timeout is charged a timeout (not a client abort)', async () => {
  const staller = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n'); // …and then nothing
  });
  const { proxy } = await setup(0, { upstreamBodyTimeoutMs: 300 }, { base: staller });
  const res = await fetch(`${proxy.url}/iris/stream`);
  assert.equal(res.status, 200);
  await res.text().catch(() => null); // the stream is cut
  await eventually(async () => assert.equal(await counted(proxy.adminUrl, 'v1', 'timeout'), 1));
  assert.equal(await counted(proxy.adminUrl, 'v1', 'aborted'), 0);
});

test('500 sockets trickling headers are closed at the header timeout while legitimate requests keep succeeding', async () => {
  const { proxy } = await setup(20, { clientHeaderTimeoutMs: 1000, clientRequestTimeoutMs: 2000 });
  const port = Number(new URL(proxy.url).port);
  const sockets = await Promise.all(
    Array.from(
      { length: 500 },
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s));
          s.on('error', () => {});
        }),
    ),
  );
  let closedCount = 0;
  const closed = sockets.map(
    (s) =>
      new Promise<number>((r) =>
        s.once('close', () => {
          closedCount++;
          r(performance.now());
        }),
      ),
  );
  const started = performance.now();
  const trickle = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write('X');
  }, 100);
  for (const s of sockets) s.write('GET /iris/x HTTP/1.1\r\nHost: a\r\nX-Slow: ');
  let ok = 0;
  while (performance.now() - started < 1500) {
    const r = await get(`${proxy.url}/iris/predict`);
    assert.equal(r.status, 200);
    ok++;
  }
  const times = await Promise.race([Promise.all(closed), sleep(5000).then(() => null)]);
  clearInterval(trickle);
  assert.ok(times, `every trickling socket was closed (${closedCount}/500 were)`);
  const latest = Math.max(...times!) - started;
  assert.ok(
    latest < 1000 + 1500,
    `the last one closed ${Math.round(latest)} ms after it started trickling (timeout 1000 ms, checked every second)`,
  );
  assert.ok(ok > 10, `${ok} legitimate requests succeeded meanwhile`);
});

test('beyond CANARY_MAX_CONNECTIONS a new connection gets 503 TOO_MANY_CONNECTIONS; idle sockets are cleared at the header timeout, then requests succeed', async () => {
  const { proxy } = await setup(20, { maxConnections: 50, clientHeaderTimeoutMs: 1000, clientRequestTimeoutMs: 1000 });
  const port = Number(new URL(proxy.url).port);
  const idle = await Promise.all(
    Array.from(
      { length: 50 },
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s));
          s.on('error', () => {});
        }),
    ),
  );
  await sleep(100);
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /iris/x HTTP/1.1\r\nHost: a\r\n\r\n'));
    let text = '';
    s.on('data', (d) => {
      text += d;
    });
    s.on('close', () => resolve(text));
    s.on('error', () => resolve(text));
  });
  assert.match(refused, /^HTTP\/1\.1 503/);
  assert.match(refused, /TOO_MANY_CONNECTIONS/);
  // The idle flood never sent a request: the header timeout closes it, and service resumes.
  await eventually(async () => assert.equal((await get(`${proxy.url}/iris/x`)).status, 200), 4000, 100);
  for (const s of idle) s.destroy();
});

test('x-request-id: a short printable one is kept; one longer than 128 characters or with control characters is replaced', async () => {
  const { proxy } = await setup(0);
  const keep = await get(`${proxy.url}/iris/x`, { 'x-request-id': 'abc-123' });
  assert.equal(keep.headers['x-request-id'], 'abc-123');
  assert.equal(keep.json().headers['x-request-id'], 'abc-123');
  const long = await get(`${proxy.url}/iris/x`, { 'x-request-id': 'y'.repeat(8000) });
  assert.match(String(long.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  assert.equal(long.json().headers['x-request-id'], long.headers['x-request-id']);
  const raw = await new Promise<string>((resolve) => {
    const s = net.connect(Number(new URL(proxy.url).port), '127.0.0.1', () =>
      s.write('GET /iris/x HTTP/1.1\r\nHost: a\r\nx-request-id: a\tb\r\nconnection: close\r\n\r\n'),
    );
    let t = '';
    s.on('data', (d) => {
      t += d;
    });
    s.on('close', () => resolve(t));
  });
  assert.doesNotMatch(raw, /x-request-id: a\tb/);
  assert.match(raw, /x-request-id: [0-9a-f-]{36}/);
});

test('gateway paths: dot-segments are resolved once inside the deployment, and refused with 400 when they would leave it', async () => {
  const { proxy } = await setup(0);
  const port = Number(new URL(proxy.url).port);
  const send = (target: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: target, method: 'GET' }, (res) => {
        let b = '';
        res.on('data', (d) => {
          b += d;
        });
        res.on('end', () => resolve({ status: res.statusCode!, body: b }));
      });
      req.on('error', reject);
      req.end();
    });
  for (const t of ['/iris/../echo/predict', '/iris/%2e%2e/echo', '/iris/a/../../x', '/../iris/x', '/%2E%2E/x']) {
    const r = await send(t);
    assert.equal(r.status, 400, t);
    assert.match(r.body, /BAD_REQUEST_TARGET/, t);
  }
  const inside = await send('/iris/a/./b/../predict?x=1');
  assert.equal(inside.status, 200);
  assert.equal(JSON.parse(inside.body).path, '/a/predict?x=1');
});

test('WebSocket upgrades pass through to the variant chosen at upgrade time (sticky by key), counted as one request; websockets: false refuses with 501', async () => {
  const { WebSocketServer } = await import('ws');
  const { WebSocket } = await import('undici');
  const echo = async (who: string) => {
    const server = http.createServer((_req, res) => {
      res.writeHead(404);
      res.end();
    });
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`${who}:${m}`)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
      close: async () => {
        wss.close();
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      },
    };
  };
  const base = await echo('baseline'),
    can = await echo('canary');
  const { proxy } = await setup(50, {}, { base, can });
  const talk = (key: string) =>
    new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/iris/ws`, {
        headers: { 'x-canary-key': key },
      } as never);
      ws.onopen = () => ws.send('hello');
      ws.onmessage = (e) => {
        resolve(String(e.data));
        ws.close();
      };
      ws.onerror = () => reject(new Error('websocket failed'));
    });
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => talk(`user-${i}`)));
  assert.ok(
    answers.every((a) => /^(baseline|canary):hello$/.test(a)),
    answers.join(),
  );
  assert.ok(
    answers.some((a) => a.startsWith('canary')) && answers.some((a) => a.startsWith('baseline')),
    'both variants served',
  );
  for (let i = 0; i < 20; i++)
    assert.equal(await talk(`user-${i}`), answers[i], 'the same key lands on the same variant');
  const upgrades = (await counted(proxy.adminUrl, 'v1', 'success')) + (await counted(proxy.adminUrl, 'v2', 'success'));
  assert.equal(upgrades, 40, 'each upgrade is one request');

  // Turned off: a clear 501 that is nobody's model error.
  const off = await startTestProxy({
    version: 1,
    deployments: { iris: { ...route('iris', base.url, can.url, 50), settings: { websockets: false } } },
  });
  cleanups.push(() => off.close());
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(off.port, '127.0.0.1', () =>
      s.write(
        'GET /iris/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      ),
    );
    let t = '';
    s.on('data', (d) => {
      t += d;
    });
    s.on('close', () => resolve(t));
  });
  assert.match(refused, /^HTTP\/1\.1 501/);
  assert.match(refused, /UPGRADE_NOT_SUPPORTED/);
  for (const v of ['v1', 'v2'])
    for (const o of ['server_error', 'client_error']) assert.equal(await counted(off.adminUrl, v, o), 0);
});

test('fidelity: a header sent twice reaches the model as two lines; x-forwarded-for is the peer unless CANARY_TRUST_PROXY', async () => {
  let raw: string[] = [];
  const model = await startUpstream((req, res) => {
    raw = req.rawHeaders;
    res.end('ok');
  });
  for (const trust of [false, true]) {
    const { proxy } = await setup(
      0,
      { trustProxy: trust },
      {
        base: trust
          ? await startUpstream((req, res) => {
              raw = req.rawHeaders;
              res.end('ok');
            })
          : model,
      },
    );
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(Number(new URL(proxy.url).port), '127.0.0.1', () =>
        s.write(
          'GET /iris/x HTTP/1.1\r\nHost: a\r\nX-Tag: one\r\nX-Tag: two\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n',
        ),
      );
      let t = '';
      s.on('data', (d) => {
        t += d;
      });
      s.on('close', () => resolve(t));
    });
    assert.match(reply, /^HTTP\/1\.1 200/);
    const pairs: [string, string][] = [];
    for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i].toLowerCase(), raw[i + 1]]);
    assert.deepEqual(
      pairs.filter(([k]) => k === 'x-tag').map(([, v]) => v),
      ['one', 'two'],
    );
    const xff = pairs.find(([k]) => k === 'x-forwarded-for')![1];
    assert.equal(xff, trust ? '6.6.6.6, 127.0.0.1' : '127.0.0.1');
  }
});

test('past CANARY_BUFFER_BUDGET_BYTES a canary request streams and is not retried (counted); within it, it is', async () => {
  const body = JSON.stringify({ blob: 'x'.repeat(1000) });
  const failing = await echoUpstream('canary', 503);
  const { proxy } = await setup(100, { bufferBudgetBytes: 500 }, { can: failing });
  const r = await fetch(`${proxy.url}/iris/x`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(r.status, 503, "not held, so not retried: the canary's answer reaches the user");
  assert.match((await get(`${proxy.adminUrl}/metrics`)).text, /canary_proxy_buffer_budget_exceeded_total 1/);
  const small = await fetch(`${proxy.url}/iris/x`, {
    method: 'POST',
    body: '{"a":1}',
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(small.status, 200);
  assert.equal(small.headers.get('x-canary-retried-from'), 'v2');
});

test("fidelity: the model's reason phrase and its response headers (order, repeats) reach the client as sent", async () => {
  const model = await startUpstream((req, res) => {
    req.resume();
    res.writeHead(
      400,
      'BAD REQUEST',
      [
        ['X-B', '1'],
        ['Set-Cookie', 'a=1'],
        ['X-A', '2'],
        ['Set-Cookie', 'b=2'],
        ['Content-Type', 'application/json'],
      ].flat(),
    );
    res.end('{"error":"bad features"}');
  });
  const { proxy } = await setup(0, {}, { base: model });
  const reply = await new Promise<string>((resolve) => {
    const s = net.connect(Number(new URL(proxy.url).port), '127.0.0.1', () =>
      s.write('POST /iris/predict HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}'),
    );
    let t = '';
    s.on('data', (d) => {
      t += d;
    });
    s.on('close', () => resolve(t));
  });
  assert.match(reply, /^HTTP\/1\.1 400 BAD REQUEST\r\n/);
  const names = reply
    .split('\r\n\r\n')[0]
    .split('\r\n')
    .slice(1)
    .map((l) => l.split(':')[0]);
  const ours = names.filter((n) => ['X-B', 'Set-Cookie', 'X-A', 'Content-Type'].includes(n));
  assert.deepEqual(ours, ['X-B', 'Set-Cookie', 'X-A', 'Set-Cookie', 'Content-Type']);
  // On a keep-alive connection too, no header the model did not send (Node would add Keep-Alive).
  const agent = new http.Agent({ keepAlive: true });
  const kept = await new Promise<http.IncomingMessage>((resolve) =>
    http.get(`${proxy.url}/iris/predict`, { agent }, (res) => {
      res.resume();
      resolve(res);
    }),
  );
  agent.destroy();
  assert.equal(kept.headers.connection, 'keep-alive');
  assert.equal(kept.headers['keep-alive'], undefined);
  assert.equal(await counted(proxy.adminUrl, 'v1', 'client_error'), 2, 'a 4xx counts against nobody');
});

test('per-deployment timeouts: a model needing 1 s passes with timeouts.headers 3s although the proxy default is 300 ms; another deployment times out', async () => {
  const slow = await startUpstream((req, res) => {
    req.resume();
    setTimeout(() => res.end('{"ok":true}'), 1000);
  });
  const proxy = await startTestProxy(
    {
      version: 1,
      deployments: {
        patient: { ...route('patient', slow.url, null), settings: { headersTimeoutMs: 3000 } },
        strict: route('strict', slow.url, null),
      },
    },
    { config: { upstreamTimeoutMs: 300 } },
  );
  cleanups.push(
    () => slow.close(),
    () => proxy.close(),
  );
  assert.equal((await get(`${proxy.url}/patient/x`)).status, 200);
  const r = await get(`${proxy.url}/strict/x`);
  assert.equal(r.status, 504);
  assert.equal(r.json().error.code, 'UPSTREAM_TIMEOUT');
});

test('retryMethods: a failing canary POST is not retried when only GET may be sent twice; a GET is', async () => {
  const failing = await echoUpstream('canary', 503);
  const base = await echoUpstream('baseline');
  const proxy = await startTestProxy({
    version: 1,
    deployments: { iris: { ...route('iris', base.url, failing.url, 100), settings: { retryMethods: ['GET'] } } },
  });
  cleanups.push(
    () => failing.close(),
    () => base.close(),
    () => proxy.close(),
  );
  const post = await fetch(`${proxy.url}/iris/x`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 503);
  const getR = await get(`${proxy.url}/iris/x`);
  assert.equal(getR.status, 200);
  assert.equal(getR.headers['x-canary-retried-from'], 'v2');
});

test('canary requests in flight are capped at the pool size: beyond it requests go to the baseline and are counted, never queued behind hung ones', async () => {
  const hanging = await startUpstream(() => {
    /* never answers */
  });
  const { proxy } = await setup(100, { upstreamConnections: 4, upstreamTimeoutMs: 60_000 }, { can: hanging });
  const hold = new AbortController();
  const hung = Array.from({ length: 4 }, () =>
    fetch(`${proxy.url}/iris/x`, { method: 'PUT', body: 'x', signal: hold.signal }).catch(() => null),
  );
  await sleep(300);
  // The four hung requests hold every canary slot for the whole test: an answer at all, from the
  // baseline, means this request was not queued behind them.
  const r = await get(`${proxy.url}/iris/x`);
  assert.equal(r.status, 200);
  assert.equal(r.json().who, 'baseline');
  assert.match(
    (await get(`${proxy.adminUrl}/metrics`)).text,
    /canary_proxy_canary_diverted_total\{deployment="iris",reason="in_flight_cap"\} 1/,
  );
  hold.abort();
  await Promise.all(hung);
});

test('the proxy checks every connect too: a route table pointing at its own admin port or a metadata address is refused at connect', async () => {
  const proxy = await startTestProxy({ version: 1, deployments: {} }, { config: { connectTimeoutMs: 1000 } });
  cleanups.push(() => proxy.close());
  // Tables that bypass the API's registration check (a file, or a table written to Redis by hand).
  (proxy.source as StaticRouteSource).set({
    version: 2,
    deployments: { self: route('self', proxy.adminUrl, null), meta: route('meta', 'http://169.254.169.254', null) },
  });
  const self = await get(`${proxy.url}/self/metrics`);
  assert.equal(self.status, 502);
  assert.match(self.text, /one of this stack's own services/);
  assert.doesNotMatch(self.text, /canary_proxy_requests_total/, 'the admin port never answered through the proxy');
  const meta = await get(`${proxy.url}/meta/latest/meta-data`);
  assert.equal(meta.status, 502);
  assert.match(meta.text, /link-local or cloud-metadata/);
});

test('forced routing for testers: x-canary-force picks the variant where the deployment allows it; such requests are never analysed, retried or logged', async () => {
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary', 503);
  const proxy = await startTestProxy({
    version: 1,
    deployments: {
      open: { ...route('open', base.url, can.url, 0), settings: { allowForcedVariant: true } },
      closed: route('closed', base.url, can.url, 0),
    },
  });
  cleanups.push(
    () => base.close(),
    () => can.close(),
    () => proxy.close(),
  );
  const forced = await get(`${proxy.url}/open/x`, { 'x-canary-force': 'canary' });
  assert.equal(forced.status, 503, "the canary's own answer, not retried on the baseline");
  assert.equal(forced.headers['x-canary-variant'], 'canary');
  assert.equal(forced.headers['x-canary-forced'], 'true');
  const ignored = await get(`${proxy.url}/closed/x`, { 'x-canary-force': 'canary' });
  assert.equal(ignored.json().who, 'baseline', 'not allowed: the header is ignored');
  await proxy.flushStats();
  const stats = await proxy.stats.read('open', 'v2', Date.now() - 60_000, Date.now());
  assert.equal(stats.requests, 0, 'forced requests are not analysed');
  const metrics = (await get(`${proxy.adminUrl}/metrics`)).text;
  assert.match(
    metrics,
    /canary_proxy_forced_requests_total\{deployment="open",version="v2",role="canary",outcome="server_error"\} 1/,
  );
  assert.doesNotMatch(
    metrics,
    /canary_proxy_requests_total\{deployment="open",version="v2",role="canary",outcome="server_error"\} 1/,
  );
});

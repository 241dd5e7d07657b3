import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { chromium } from 'playwright-core';
import { request } from 'undici';
import { loadControlPlaneConfig } from '../../common/config.js';
import { startControlPlane } from '../../control-plane/main.js';
import { redisKeys } from '../../proxy/contract/keys.js';
import type { StaticRouteSource } from '../../proxy/split/sources/static-source.js';
import {
  echoUpstream,
  eventually,
  freshSchema,
  REDIS_URL,
  route,
  silent,
  startTestProxy,
  testPrefix,
} from '../helpers/servers.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const STICKY = { cookie: 'cm_variant', ttlMs: 24 * 3600_000 };

async function sticky(weight: number, config = {}) {
  const base = await echoUpstream('baseline');
  const can = await echoUpstream('canary');
  const table = (w: number, version = 1) => ({
    version,
    deployments: { iris: { ...route('iris', base.url, can.url, w), settings: { sticky: STICKY } } },
  });
  const proxy = await startTestProxy(table(weight), { config });
  cleanups.push(
    () => proxy.close(),
    () => base.close(),
    () => can.close(),
  );
  return {
    proxy,
    setWeight: (w: number, v: number) => (proxy.source as StaticRouteSource).set(table(w, v)),
    base,
    can,
  };
}

/** A client that keeps the cookies it is given, as a browser or an HTTP library's jar does. */
function client(url: string) {
  const jar = new Map<string, string>();
  return {
    jar,
    async ask(headers: Record<string, string> = {}) {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const r = await request(url, {
        method: 'POST',
        body: '{}',
        headers: { ...(cookie ? { cookie } : {}), ...headers },
      });
      await r.body.dump();
      const set = r.headers['set-cookie'];
      for (const c of [set ?? []].flat()) {
        const [pair] = c.split(';');
        const eq = pair.indexOf('=');
        jar.set(pair.slice(0, eq), pair.slice(eq + 1));
      }
      return { variant: String(r.headers['x-canary-variant']), setCookie: set, status: r.statusCode };
    },
  };
}

test('fresh clients that keep the cookie they are given stay on their variant, across a ramp from 10 to 50%; about the weight’s share land on the canary', async () => {
  const { proxy, setWeight } = await sticky(10);
  const clients = Array.from({ length: 200 }, () => client(`${proxy.url}/iris/predict`));
  const first = await Promise.all(clients.map((c) => c.ask()));
  assert.ok(
    first.every((a) => typeof a.setCookie === 'string'),
    'each fresh client is handed a cookie',
  );
  assert.match(
    String(first[0].setCookie),
    /^cm_variant=[A-Za-z0-9_-]{16}; Path=\/iris; Max-Age=86400; HttpOnly; SameSite=Lax$/,
  );
  const at10 = first.map((a) => a.variant);
  for (let round = 0; round < 3; round++) {
    const again = await Promise.all(clients.map((c) => c.ask()));
    assert.deepEqual(
      again.map((a) => a.variant),
      at10,
      'every client stays on its variant while the weight holds',
    );
    assert.ok(
      again.every((a) => a.setCookie === undefined),
      'a client with its cookie is not given another',
    );
  }
  const onCanary10 = at10.filter((v) => v === 'canary').length;
  assert.ok(onCanary10 >= 5 && onCanary10 <= 45, `${onCanary10} of 200 on the canary at 10%`);
  setWeight(50, 2);
  const at50 = (await Promise.all(clients.map((c) => c.ask()))).map((a) => a.variant);
  at10.forEach((v, i) => {
    if (v === 'canary') assert.equal(at50[i], 'canary', 'a canary client stays on the canary as the weight rises');
  });
  const onCanary50 = at50.filter((v) => v === 'canary').length;
  assert.ok(onCanary50 >= 70 && onCanary50 <= 130, `${onCanary50} of 200 on the canary at 50%`);
  assert.deepEqual(
    (await Promise.all(clients.map((c) => c.ask()))).map((a) => a.variant),
    at50,
    'and stay there at 50%',
  );
});

test('a header key wins over the cookie; Secure behind TLS (X-Forwarded-Proto: https); a cookie this proxy did not hand out is replaced', async () => {
  const { proxy } = await sticky(50);
  const url = `${proxy.url}/iris/predict`;
  // Forty keys by header: none is handed a cookie, and each lands where the header alone sends it.
  for (let i = 0; i < 40; i++) {
    const byHeader = await client(url).ask({ 'x-canary-key': `user-${i}` });
    const withCookie = await client(url).ask({ 'x-canary-key': `user-${i}`, cookie: 'cm_variant=someone-else' });
    assert.equal(byHeader.setCookie, undefined);
    assert.equal(withCookie.variant, byHeader.variant, 'the header key routes, not the cookie');
  }
  const tls = await client(url).ask({ 'x-forwarded-proto': 'https' });
  assert.match(String(tls.setCookie), /; Secure$/);
  const odd = await client(url).ask({ cookie: 'other=1; cm_variant=not a key!' });
  assert.match(String(odd.setCookie), /^cm_variant=[A-Za-z0-9_-]{16};/);
});

test('sidecar mode scopes the cookie to /; HTTP/2 clients get it too; a WebSocket upgrade is routed by it', async () => {
  const { proxy } = await sticky(50, { deployment: 'iris' });
  const first = await client(`${proxy.url}/predict`).ask();
  assert.match(String(first.setCookie), /; Path=\/;/);
  // HTTP/2 with prior knowledge, as gRPC and curl --http2-prior-knowledge speak it.
  const session = http2.connect(proxy.url);
  cleanups.push(async () => session.close());
  const h2 = (cookie?: string) =>
    new Promise<{ variant: string; setCookie: string[] | undefined }>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/predict', ...(cookie ? { cookie } : {}) });
      req.on('response', (h) =>
        resolve({ variant: String(h['x-canary-variant']), setCookie: h['set-cookie'] as string[] | undefined }),
      );
      req.on('error', reject);
      req.resume();
      req.end('{}');
    });
  const fresh = await h2();
  assert.ok(fresh.setCookie?.[0]?.startsWith('cm_variant='), JSON.stringify(fresh));
  const kept = fresh.setCookie![0].split(';')[0];
  for (let i = 0; i < 5; i++) {
    const again = await h2(kept);
    assert.equal(again.variant, fresh.variant);
    assert.equal(again.setCookie, undefined);
  }
  // An upgrade without a cookie is handed one in its 101 (here refused by the echo model: its
  // answer still carries the cookie), and one with the cookie goes where the cookie says.
  const upgrade = (cookie?: string) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request(`${proxy.url}/ws`, {
        headers: { connection: 'Upgrade', upgrade: 'websocket', ...(cookie ? { cookie } : {}) },
      });
      req.on('response', resolve);
      req.on('upgrade', (res, socket: net.Socket) => {
        socket.destroy();
        resolve(res);
      });
      req.on('error', reject);
      req.end();
    });
  const up = await upgrade();
  assert.match(String(up.headers['set-cookie']), /^cm_variant=/);
  const upKept = String(up.headers['set-cookie']).split(';')[0];
  const upVariant = up.headers['x-canary-variant'];
  for (let i = 0; i < 5; i++) {
    const again = await upgrade(upKept);
    assert.equal(again.headers['x-canary-variant'], upVariant);
    assert.equal(again.headers['set-cookie'], undefined);
  }
});

test('Chromium keeps the cookie across page loads against the proxy: the same variant every time', async () => {
  const { proxy } = await sticky(50);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu'],
  });
  cleanups.push(() => browser.close());
  const variants: string[] = [];
  for (let visitor = 0; visitor < 6; visitor++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen: string[] = [];
    for (let load = 0; load < 4; load++) {
      const res = await page.goto(`${proxy.url}/iris/page`);
      seen.push(String(res?.headers()['x-canary-variant']));
    }
    const cookies = await context.cookies(`${proxy.url}/iris/page`);
    assert.equal(cookies.filter((c) => c.name === 'cm_variant').length, 1, 'one cookie kept');
    assert.equal(new Set(seen).size, 1, `visitor ${visitor} saw ${seen.join(', ')}`);
    variants.push(seen[0]);
    await context.close();
  }
  assert.ok(variants.every((v) => v === 'baseline' || v === 'canary'));
});

test('the API: sticky {cookie, ttl} is set, shown, reaches the route table and is turned off with null; a bad name or ttl is a 400 naming the field', async () => {
  const schema = await freshSchema();
  cleanups.push(() => schema.drop());
  const prefix = testPrefix();
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => redis.quit());
  const cp = await startControlPlane(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: prefix,
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
    }),
    { logger: silent },
  );
  cleanups.push(() => cp.close());
  const api = (method: string, url: string, payload?: object) =>
    cp.app.inject({ method: method as 'GET', url, payload }).then((r) => ({ status: r.statusCode, json: r.json() }));
  const created = await api('POST', '/v1/deployments', {
    name: 'chat',
    baseline: { version: 'v1', url: 'http://127.0.0.1:9' },
    sticky: { cookie: 'cm_chat', ttl: '12h' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.deepEqual(created.json.sticky, { cookie: 'cm_chat', ttl: '12h' });
  // What the proxies are told (through Redis, as they read it).
  await eventually(async () => {
    const table = JSON.parse((await redis.get(redisKeys(prefix).routes)) ?? '{}');
    assert.deepEqual(table.deployments?.chat?.settings?.sticky, { cookie: 'cm_chat', ttlMs: 12 * 3600_000 });
  });
  const defaulted = await api('PATCH', '/v1/deployments/chat', { sticky: { cookie: 'cm_chat' } });
  assert.deepEqual(defaulted.json.sticky, { cookie: 'cm_chat', ttl: '24h' });
  for (const [sticky, field] of [
    [{ cookie: 'bad name' }, /^sticky\.cookie: /],
    [{ cookie: '' }, /^sticky\.cookie: /],
    [{ cookie: 'ok', ttl: 'soon' }, /^sticky\.ttl: /],
    [{ cookie: 'ok', ttl: '0s' }, /^sticky\.ttl: /],
    [{ cookie: 'ok', ttl: '9000h' }, /^sticky\.ttl: /],
  ] as const) {
    const r = await api('PATCH', '/v1/deployments/chat', { sticky });
    assert.equal(r.status, 400, JSON.stringify(sticky));
    assert.match(r.json.error.message, field);
  }
  const unknown = await api('PATCH', '/v1/deployments/chat', { sticky: { cookie: 'ok', path: '/' } });
  assert.equal(unknown.status, 400, 'an unknown field of sticky is refused');
  assert.deepEqual((await api('GET', '/v1/deployments/chat')).json.sticky, { cookie: 'cm_chat', ttl: '24h' });
  const off = await api('PATCH', '/v1/deployments/chat', { sticky: null });
  assert.equal(off.json.sticky, null);
});

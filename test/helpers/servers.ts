import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { loadProxyConfig, type ProxyConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { addValue } from '../../proxy/contract/histogram.js';
import { MemoryStatsStore } from '../../proxy/contract/memory-stats-store.js';
import type { StatsStore } from '../../proxy/contract/stats.js';
import { type RunningProxy, startProxy } from '../../proxy/proxy.js';
import type { RouteSource } from '../../proxy/split/sources/route-source.js';
import { StaticRouteSource } from '../../proxy/split/sources/static-source.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const silent = createLogger('test', 'silent');

/** A unique Redis key prefix per test so parallel tests never see each other's keys. */
export function testPrefix(): string {
  return `canary-test:${randomBytes(6).toString('hex')}:`;
}

/** A plain HTTP upstream on port 0 that answers with `handler`. */
export async function startUpstream(
  handler: http.RequestListener,
): Promise<{ url: string; server: http.Server; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** An upstream that answers JSON `{who}` with the given status. */
export function echoUpstream(who: string, status = 200) {
  return startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({
        who,
        path: req.url,
        method: req.method,
        headers: req.headers,
        bodyBytes: Buffer.concat(chunks).length,
      });
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-upstream': who,
      });
      res.end(body);
    });
  });
}

/** A port nobody listens on (bound then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startTestProxy(
  table: unknown,
  opts: { config?: Partial<ProxyConfig>; source?: RouteSource; stats?: StatsStore } = {},
): Promise<RunningProxy & { source: RouteSource; stats: StatsStore }> {
  const source = opts.source ?? new StaticRouteSource(table);
  const stats = opts.stats ?? new MemoryStatsStore();
  const config = loadProxyConfig(
    {},
    { host: '127.0.0.1', port: 0, adminPort: 0, statsFlushMs: 200, shutdownGraceMs: 2000, ...opts.config },
  );
  const proxy = await startProxy({ config, routeSource: source, statsStore: stats, logger: silent });
  return Object.assign(proxy, { source, stats });
}

export function route(
  name: string,
  baselineUrl: string,
  canaryUrl: string | null,
  weight = 0,
  extra: Record<string, unknown> = {},
) {
  return {
    name,
    baseline: { version: 'v1', url: baselineUrl },
    canary: canaryUrl ? { version: 'v2', url: canaryUrl, weight } : null,
    ...extra,
  };
}

/** Sends `n` requests with bounded concurrency; returns each response's status and headers. */
export async function blast(
  n: number,
  concurrency: number,
  make: (i: number) => Promise<{ status: number; variant?: string }>,
) {
  const results: { status: number; variant?: string }[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await make(i);
      }
    }),
  );
  return results;
}

export async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

/**
 * Waits until `check` passes or the time runs out (then throws its last error). Give `assert.ok` a message in a check:
 * without one, node:assert re-reads the source file to quote the expression, and under tsx's
 * whitespace-minified output that takes seconds per failed look.
 */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 5000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(everyMs);
    }
  }
}

/**
 * Until the proxy at `adminUrl` routes deployment `name`. Over Redis it learns a new route table a
 * moment after the API answered; a client that starts sooner gets UNKNOWN_DEPLOYMENT, as it
 * would against a real deployment.
 */
export function untilRouted(adminUrl: string, name: string): Promise<void> {
  return eventually(
    async () => {
      const table = (await (await request(`${adminUrl}/routes`)).body.json()) as {
        deployments: Record<string, unknown>;
      };
      assert.ok(table.deployments[name], `${name} is not routed yet`);
    },
    30_000,
    20,
  );
}

/** A throwaway redis-server on its own port, for tests that stop and restart Redis. */
export async function startThrowawayRedis(
  port?: number,
): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  const p = port ?? (await closedPort());
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await eventually(
    () =>
      new Promise<void>((resolve, reject) => {
        const s = net.connect(p, '127.0.0.1', () => {
          s.destroy();
          resolve();
        });
        s.on('error', reject);
      }),
    5000,
  );
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Writes a route table the way the control plane does: SET + PUBLISH in one MULTI. */
export async function publishTable(
  redis: import('ioredis').Redis,
  prefix: string,
  table: { version: number; deployments: Record<string, unknown> },
): Promise<void> {
  const { redisKeys } = await import('../../proxy/contract/keys.js');
  const keys = redisKeys(prefix);
  await redis.multi().set(keys.routes, JSON.stringify(table)).publish(keys.routesChannel, String(table.version)).exec();
}

/**
 * A fresh, empty schema in the test database, so parallel suites never share tables.
 * Returns a connection string whose search_path points at it, and a drop function.
 */
export async function freshSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const pg = (await import('pg')).default;
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const u = new URL(DATABASE_URL);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}

/** Sends raw bytes to a server and returns everything it answers until it closes the socket. */
export function rawHttp(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    let data = '';
    s.on('data', (d) => {
      data += d;
    });
    s.on('close', () => resolve(data));
  });
}

/**
 * One second of a version's traffic as a proxy records it: `requests` answers of 5 ms, of
 * which `modelErrors` failed. For tests that need the analysis to see a given error rate.
 */
/**
 * Writes cells as the proxies' next flush would, into the second after now — a step's stats
 * start at the whole second after the step began — and waits until that second has begun.
 */
export async function writeStatsNextSecond(store: StatsStore, cells: ReturnType<typeof statsCell>[]): Promise<void> {
  const second = Math.floor(Date.now() / 1000) + 1;
  await store.write(cells.map((c) => ({ ...c, epochSecond: second })));
  await sleep(Math.max(0, second * 1000 - Date.now() + 20));
}

export function statsCell(deployment: string, version: string, requests: number, modelErrors: number) {
  const latency = new Map<number, number>();
  addValue(latency, 5, requests);
  return {
    deployment,
    version,
    epochSecond: Math.floor(Date.now() / 1000),
    requests,
    modelErrors,
    clientErrors: 0,
    latency,
  };
}

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { type RunningStack, startStack } from '../../control-plane/main.js';
import { parseFaults } from '../../model-servers/faults.js';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { TRIP_RUN } from '../../proxy/split/trips.js';
import { eventually, silent, startUpstream } from '../helpers/servers.js';

/**
 * A canary that starts hanging or failing every request, with the default 30 s analysis
 * interval: the proxy takes it off live traffic on its own (fast trip), users see no failures
 * and do not wait on it, and the control plane records the trip and rolls back.
 */
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const flower = { features: { sepal_length: 6, sepal_width: 3, petal_length: 4.5, petal_width: 1.4 } };

/** Prediction traffic until stopped; each response's status, variant and latency is kept. */
const CONCURRENCY = 8;

function traffic(url: string, concurrency = CONCURRENCY) {
  const seen: { status: number; ms: number; variant: string; at: number }[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const r = await request(url, {
          method: 'POST',
          body: JSON.stringify(flower),
          headers: { 'content-type': 'application/json' },
          headersTimeout: 60_000,
        });
        await r.body.dump();
        seen.push({
          status: r.statusCode,
          ms: performance.now() - t0,
          variant: String(r.headers['x-canary-variant']),
          at: Date.now(),
        });
      } catch {
        seen.push({ status: -1, ms: performance.now() - t0, variant: '-', at: Date.now() });
      }
    }
  });
  return {
    seen,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function stack(
  models: RunningModelServer[],
): Promise<{ stack: RunningStack; api: (m: string, p: string, b?: unknown) => Promise<any> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-faults-'));
  const s = await startStack(
    loadControlPlaneConfig({ CANARY_DATA_DIR: dir, CANARY_API_PORT: '0', CANARY_XDS_PORT: 'off' }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
  cleanups.push(
    () => rm(dir, { recursive: true, force: true }),
    ...models.map((m) => () => m.close()),
    () => s.close(),
  );
  const api = (method: string, p: string, body?: unknown) =>
    s.controlPlane.app
      .inject({ method: method as 'GET', url: p, payload: (body ?? (method === 'GET' ? undefined : {})) as object })
      .then((r) => r.json());
  return { stack: s, api };
}

for (const [what, mode] of [
  ['hangs', 'hang'],
  ['fails every request', 'fail'],
] as const) {
  test(`a canary that ${what} is off live traffic after a bounded number of requests (default 30 s interval), users see no failures, and it is rolled back as proxy_tripped`, async () => {
    const v1 = await startModelServer({ model: 'v1' });
    // The canary: a model server that never answers, or answers 503 to everything; every request it gets is noted.
    let canaryHits: number[] = [];
    const v2 = await startUpstream((req, res) => {
      canaryHits.push(Date.now());
      if (mode === 'fail') {
        req.resume();
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":"model crashed"}');
      }
    });
    cleanups.push(() => v2.close());
    const { stack: s, api } = await stack([v1]);
    // A 10-minute header timeout: a user left waiting on the hanging canary would see the
    // client's own 60 s timeout (a failure), so "no failures" means nobody waited on it.
    await api('POST', '/v1/deployments', {
      name: 'iris',
      baseline: { version: 'v1', url: v1.url },
      timeouts: { headers: '10m' },
    });
    const load = traffic(`${s.proxy.url}/iris/predict`);
    await eventually(() => assert.ok(load.seen.length > 100, `${load.seen.length} answers so far`), 10_000); // the baseline's live p99 is known ("auto" hedging)
    canaryHits = [];
    const started = Date.now();
    const d = await api('POST', '/v1/deployments/iris/canary', { version: 'v2', url: v2.url, weight: 20 });
    assert.equal(d.policy.interval, '30s');
    await eventually(
      async () =>
        assert.equal(
          (await api('GET', '/v1/deployments/iris')).canary,
          null,
          `canary still running; ${canaryHits.length} canary hits`,
        ),
      15_000,
      100,
    );
    await load.stop();
    assert.ok(canaryHits.length > 0, 'the canary did get traffic');
    // Counted in requests, not seconds: the trip's run, plus what was in flight when it tripped.
    assert.ok(
      canaryHits.length <= TRIP_RUN + CONCURRENCY,
      `${canaryHits.length} requests reached the canary (trip run ${TRIP_RUN}, ${CONCURRENCY} clients)`,
    );
    const during = load.seen.filter((r) => r.at >= started);
    assert.deepEqual(
      during.filter((r) => r.status !== 200).map((r) => r.status),
      [],
      'users saw no failures',
    );
    const events = (await api('GET', '/v1/deployments/iris/events')).events.map(
      (e: { type: string; actor: string }) => `${e.type}:${e.actor}`,
    );
    assert.deepEqual(events.slice(0, 3), ['rolled_back:proxy', 'auto_rollback_triggered:proxy', 'proxy_tripped:proxy']);
    const trip = (await api('GET', '/v1/deployments/iris/events')).events.find(
      (e: { type: string }) => e.type === 'proxy_tripped',
    );
    assert.ok(trip.after.consecutiveFailures >= 8 && trip.after.version === 'v2');
  });
}

test('hedging: with a canary that answers in 2 s, users get the baseline after the hedge delay, and the canary is recorded slow (hedge_lost), not failed', async () => {
  const v1 = await startModelServer({ model: 'v1' });
  const v2 = await startModelServer({ model: 'v3', version: 'v2', faults: parseFaults({ latencyMs: 2000 }) });
  const { stack: s, api } = await stack([v1, v2]);
  const created = await api('POST', '/v1/deployments', {
    name: 'slow',
    baseline: { version: 'v1', url: v1.url },
    hedgeCanaryAfter: '200ms',
  });
  assert.equal(created.hedgeCanaryAfter, '200ms', JSON.stringify(created));
  const started = await api('POST', '/v1/deployments/slow/canary', {
    version: 'v2',
    url: v2.url,
    weight: 100,
    policy: { autoRollback: false },
  });
  assert.equal(started.canary?.weight, 100, JSON.stringify(started));
  await eventually(() => assert.equal(s.proxy.table().deployments.slow.canary?.weight, 100));
  for (let i = 0; i < 4; i++) {
    const r = await request(`${s.proxy.url}/slow/predict`, { method: 'POST', body: JSON.stringify(flower) });
    await r.body.dump();
    // The baseline's answer, hedged: it arrived first, so nobody waited out the canary's 2 s.
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['x-canary-hedged-from'], 'v2');
    assert.equal(r.headers['x-canary-variant'], 'baseline');
  }
  const metrics = await request(`${s.proxy.adminUrl}/metrics`).then((r) => r.body.text());
  assert.match(
    metrics,
    /canary_proxy_requests_total\{deployment="slow",version="v2",role="canary",outcome="hedge_lost"\} 4/,
  );
  assert.match(
    metrics,
    /canary_proxy_requests_total\{deployment="slow",version="v2",role="canary",outcome="timeout"\} 0/,
  );
  assert.match(metrics, /canary_proxy_canary_hedges_total\{deployment="slow"\} 4/);
});

test('per-deployment settings are set at creation and changed later with PATCH; the proxies apply them with the next route table', async () => {
  // (undici checks request timeouts on a coarse clock, about every half second: margins are wide.)
  const v1 = await startModelServer({ model: 'v1', faults: parseFaults({ latencyMs: 2000 }) });
  const { stack: s, api } = await stack([v1]);
  const created = await api('POST', '/v1/deployments', {
    name: 'gen',
    baseline: { version: 'v1', url: v1.url },
    timeouts: { headers: '300ms' },
  });
  assert.equal(created.timeouts.headers, '300ms');
  const ask = async () => {
    const r = await request(`${s.proxy.url}/gen/predict`, { method: 'POST', body: JSON.stringify(flower) });
    await r.body.dump();
    return r.statusCode;
  };
  await eventually(() => assert.equal(s.proxy.table().deployments.gen?.settings?.headersTimeoutMs, 300));
  assert.equal(await ask(), 504, 'a 2 s model times out at 300 ms');
  const changed = await api('PATCH', '/v1/deployments/gen', {
    timeouts: { headers: '5s' },
    hedgeCanaryAfter: 'off',
    retryMethods: ['post'],
  });
  assert.deepEqual([changed.timeouts.headers, changed.hedgeCanaryAfter, changed.retryMethods], ['5s', 'off', ['POST']]);
  await eventually(() => assert.equal(s.proxy.table().deployments.gen?.settings?.headersTimeoutMs, 5000));
  assert.equal(await ask(), 200);
  const bad = await s.controlPlane.app.inject({
    method: 'PATCH',
    url: '/v1/deployments/gen',
    payload: { timeouts: { headers: 'soon' } },
  });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().error.message, /^timeouts\.headers: expected a duration/);
  const events = (await api('GET', '/v1/deployments/gen/events')).events.map((e: { type: string }) => e.type);
  assert.equal(events[0], 'settings_changed');
});

test('identical heavy-tailed models (lognormal, median 4 ms, σ 1.5, and 0.5% stalls of 600 ms) with auto hedging: a lost hedge is never a canary error, and the canary is promoted', async (t) => {
  // A model server whose latency has a heavy tail: 4 ms × e^(1.5 z), z standard normal, and
  // 0.5% of requests stalled 600 ms — past the auto hedge delay (3 × p99 ≈ 400 ms), so hedged.
  const heavy = (who: string) =>
    startUpstream((req, res) => {
      req.resume();
      const z = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
      setTimeout(
        () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ who }));
        },
        Math.random() < 0.005 ? 600 : Math.min(5000, 4 * Math.exp(1.5 * z)),
      );
    });
  const v1 = await heavy('v1');
  const v2 = await heavy('v2');
  cleanups.push(
    () => v1.close(),
    () => v2.close(),
  );
  const { stack: s, api } = await stack([]);
  await api('POST', '/v1/deployments', { name: 'tails', baseline: { version: 'v1', url: v1.url } });
  const load = traffic(`${s.proxy.url}/tails/predict`, 16);
  await eventually(() => assert.ok(load.seen.length > 500, `${load.seen.length} answers so far`), 30_000); // the live p99 ("auto" hedging)
  await api('POST', '/v1/deployments/tails/canary', {
    version: 'v2',
    url: v2.url,
    weight: 50,
    policy: { interval: '1s', steps: [50, 100], minRequests: 200 },
  });
  let decided: any;
  try {
    decided = await eventually(
      async () => {
        const d = await api('GET', '/v1/deployments/tails');
        if (d.canary === null) return d;
        const a = await api('GET', '/v1/deployments/tails/analysis?limit=1');
        assert.fail(`undecided at ${d.canary.weight}%: ${a.latest?.reasons.join('; ') ?? 'no analysis'}`);
      },
      180_000,
      200,
    );
  } finally {
    await load.stop();
  }
  const why = (await api('GET', '/v1/deployments/tails/events')).events[0]?.reason;
  assert.equal(decided.baseline.version, 'v2', `promoted, not rolled back: ${why}`);
  const metrics = await request(`${s.proxy.adminUrl}/metrics`).then((r) => r.body.text());
  const count = (outcome: string) =>
    Number(
      new RegExp(
        `canary_proxy_requests_total\\{deployment="tails",version="v2",role="canary",outcome="${outcome}"\\} (\\d+)`,
      ).exec(metrics)?.[1] ?? 0,
    );
  t.diagnostic(`canary requests ${count('success')}, lost hedges ${count('hedge_lost')}`);
  assert.equal(count('timeout'), 0, 'no canary request was charged a timeout');
  assert.deepEqual(
    load.seen.filter((r) => r.status !== 200).map((r) => r.status),
    [],
    'users saw no failures',
  );
});

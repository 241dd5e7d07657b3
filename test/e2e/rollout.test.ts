import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { spawnCanary } from '../../common/processes.js';
import { startStack } from '../../control-plane/main.js';
import { parseFaults } from '../../model-servers/faults.js';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { eventually, freshSchema, REDIS_URL, silent, testPrefix, untilRouted } from '../helpers/servers.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const flower = (i: number) => ({
  features: {
    sepal_length: 5 + (i % 10) / 10,
    sepal_width: 3.0 + (i % 5) / 10,
    petal_length: 1.5 + (i % 30) / 10,
    petal_width: 0.2 + (i % 20) / 10,
  },
});

/** Prediction traffic through the proxy until stopped; every status is kept, and who answered each failure. */
function traffic(url: string, concurrency = 6) {
  const statuses: number[] = [];
  const failedBy: string[] = [];
  let running = true,
    i = 0;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const r = await request(url, {
          method: 'POST',
          body: JSON.stringify(flower(i++)),
          headers: { 'content-type': 'application/json' },
        });
        await r.body.dump();
        statuses.push(r.statusCode);
        if (r.statusCode !== 200) failedBy.push(String(r.headers['x-canary-variant']));
      } catch {
        statuses.push(-1);
      }
    }
  });
  return {
    statuses,
    failedBy,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function stackWith(models: RunningModelServer[]) {
  const schema = await freshSchema();
  const stack = await startStack(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
      CANARY_ANALYSIS_TICK: '100ms',
      CANARY_LEADER_LEASE: '1s',
    }),
    loadProxyConfig({
      CANARY_PROXY_PORT: '0',
      CANARY_ADMIN_PORT: '0',
      CANARY_PROXY_HOST: '127.0.0.1',
      CANARY_STATS_FLUSH: '200ms',
    }),
    { logger: silent },
  );
  cleanups.push(
    () => schema.drop(),
    ...models.map((m) => () => m.close()),
    () => stack.close(),
  );
  const api = (method: string, path: string, body?: unknown) =>
    stack.controlPlane.app
      .inject({ method: method as 'GET', url: path, payload: (body ?? (method === 'GET' ? undefined : {})) as object })
      .then((r) => r.json());
  return { stack, api };
}

test('a canary failing 30% of requests is rolled back by its first analyses, never judged healthy; the baseline never stops serving', async () => {
  const v1 = await startModelServer({ model: 'v1' });
  const v2 = await startModelServer({ model: 'v3', version: 'v2', faults: parseFaults({ errorRate: 0.3 }) });
  const { stack, api } = await stackWith([v1, v2]);
  await api('POST', '/v1/deployments', { name: 'iris', baseline: { version: 'v1', url: v1.url } });
  await untilRouted(stack.proxy.adminUrl, 'iris');
  const load = traffic(`${stack.proxy.url}/iris/predict`);
  await sleep(300);
  await api('POST', '/v1/deployments/iris/canary', {
    version: 'v2',
    url: v2.url,
    weight: 20,
    policy: { interval: '1s', minRequests: 20 },
  });
  await eventually(async () => assert.equal((await api('GET', '/v1/deployments/iris')).canary, null), 60_000, 20);
  await sleep(300);
  await load.stop();
  assert.deepEqual(
    load.statuses.filter((s) => s !== 200),
    [],
    'every client got an answer (canary failures were retried on the baseline)',
  );
  // A proxy may also trip on a run of failures (30% errors give one now and then); a trip that
  // reaches the control plane after the rollback is recorded with running: false and changes nothing.
  const types = (await api('GET', '/v1/deployments/iris/events')).events
    .filter((e: { type: string; after?: { running?: boolean } }) => !(e.type === 'proxy_tripped' && !e.after?.running))
    .map((e: { type: string }) => e.type);
  // Rolled back by an analysis, or by the proxy's trip when a run of eight failures came first
  // (30% errors give one in a few thousand requests: a slow first analysis lets it happen).
  assert.deepEqual(types.slice(0, 2), ['rolled_back', 'auto_rollback_triggered']);
  assert.ok(['analysis_failed', 'proxy_tripped'].includes(types[2]), `events ${types.join(', ')}`);
  assert.ok(!types.includes('step_advanced'), `events ${types.join(', ')}`);
  assert.equal(
    (await api('GET', '/v1/deployments/iris/versions')).versions.find((v: { version: string }) => v.version === 'v2')
      .state,
    'rolled_back',
  );
  const analysis = await api('GET', '/v1/deployments/iris/analysis');
  // Counted in analyses, not seconds (a busy machine only slows the clock): never past a verdict
  // that let it advance.
  const verdicts = (analysis.history ?? []).map((a: { verdict: string }) => a.verdict);
  assert.ok(!verdicts.includes('healthy'), `verdicts ${verdicts.join(', ')}`);
  if (types[2] === 'proxy_tripped') return;
  const failed = await api('GET', '/v1/deployments/iris/events?version=v2');
  assert.ok(
    failed.events.some((e: { type: string }) => e.type === 'analysis_failed'),
    'the analysis that failed v2 is among v2 events (it records both sides stats, and concerns the canary)',
  );
  assert.equal(analysis.latest.verdict, 'critical');
  // Rolled back by an error rule as soon as the evidence was in.
  assert.ok(
    analysis.latest.rules.some(
      (r: { rule: string; status: string }) => r.rule.startsWith('error_rate') && r.status === 'fail',
    ),
    analysis.latest.reasons.join('; '),
  );
  // The stats it acted on show the canary failing, more than the baseline (how many of its first
  // few dozen requests failed varies: 2 of 15 was enough on a loaded machine).
  const { canary: c, baseline: b } = analysis.latest;
  assert.ok(
    c.modelErrors > 0 && c.errorRate > b.errorRate,
    `measured canary error rate ${c.errorRate} (${c.modelErrors}/${c.requests}), baseline ${b.errorRate}`,
  );
});

/** iris on v1 with live traffic through the proxy, and v3 ready to be its canary. */
async function irisWithWarmV3() {
  const v1 = await startModelServer({ model: 'v1' });
  const v3 = await startModelServer({ model: 'v3' });
  const { stack, api } = await stackWith([v1, v3]);
  await api('POST', '/v1/deployments', { name: 'iris', baseline: { version: 'v1', url: v1.url } });
  await untilRouted(stack.proxy.adminUrl, 'iris');
  const load = traffic(`${stack.proxy.url}/iris/predict`);
  // Warm the new model server as a rollout would: a cold process's first answers are slow,
  // and that tail is its cold start, not the model.
  const warm = traffic(`${v3.url}/predict`, 2);
  await sleep(1500);
  await warm.stop();
  return { v1, v3, api, load };
}

/** Until v3 is the baseline; each look that finds it not yet promoted says why. */
async function untilV3Promoted(api: Awaited<ReturnType<typeof stackWith>>['api']) {
  await eventually(
    async () => {
      const d = await api('GET', '/v1/deployments/iris');
      if (d.baseline.version === 'v3') return;
      assert.ok(d.canary, `the canary ended without being promoted (baseline ${d.baseline.version})`);
      const a = await api('GET', '/v1/deployments/iris/analysis?limit=1');
      assert.fail(`not promoted yet (weight ${d.canary.weight}%): ${a.latest?.reasons.join('; ') ?? 'no analysis'}`);
    },
    // Generous: a step is decided when its evidence is in, and on a busy machine the latency
    // tail is noisier, so the p99 test needs more requests (a loaded CI run took over 45 s).
    150_000,
    100,
  );
}

test('a healthy canary walks its steps and is promoted', async () => {
  const { v3, api, load } = await irisWithWarmV3();
  await api('POST', '/v1/deployments/iris/canary', {
    version: 'v3',
    url: v3.url,
    policy: { interval: '1s', steps: [10, 50, 100], minRequests: 20 },
  });
  await untilV3Promoted(api);
  await load.stop();
  assert.deepEqual(
    load.statuses.filter((s) => s !== 200),
    [],
  );
  const events = (await api('GET', '/v1/deployments/iris/events')).events.map(
    (e: { type: string; after: { weight?: number } }) =>
      e.type === 'step_advanced' ? `step_advanced:${e.after.weight}` : e.type,
  );
  assert.deepEqual(events.slice(0, 4), ['promoted', 'auto_promote_triggered', 'step_advanced:100', 'step_advanced:50']);
});

test('a shared outage (both versions fail every request for 1 s in 4) neither trips nor rolls back a healthy canary, at 50% or at 100%: it is promoted, and users see only the failures the baseline has too', async () => {
  const { v1, v3, api, load } = await irisWithWarmV3();
  // A dependency both model servers use goes down for a second every four.
  let outages = 0;
  const outage = setInterval(() => {
    outages++;
    for (const m of [v1, v3]) m.setFaults(parseFaults({ errorRate: 1 }));
    setTimeout(() => {
      for (const m of [v1, v3]) m.setFaults(parseFaults({}));
    }, 1000);
  }, 4000);
  cleanups.push(async () => clearInterval(outage));
  await api('POST', '/v1/deployments/iris/canary', {
    version: 'v3',
    url: v3.url,
    // This test is about errors both versions share. On a loaded machine both variants' tails
    // also move past a p99 limit fixed a moment earlier (a CI run beside a simulation: 3.1% of
    // canary and 2.8% of baseline requests), and showing 3.1% within 1 point of 2.8% takes tens
    // of thousands of requests: wide latency limits keep the latency rules out of it.
    policy: {
      interval: '1s',
      steps: [50, 100],
      minRequests: 20,
      stepDuration: '5s',
      thresholds: { latencyP99Ratio: 20, latencyP95DeltaMs: 5000 },
    },
  });
  await untilV3Promoted(api);
  clearInterval(outage);
  await load.stop();
  const types = (await api('GET', '/v1/deployments/iris/events')).events.map((e: { type: string }) => e.type);
  assert.ok(outages >= 2, `${outages} outages during the rollout`);
  assert.ok(!types.includes('proxy_tripped') && !types.includes('rolled_back'), types.join(', '));
  assert.ok(types.includes('promoted'));
  // Users failed only when the baseline failed too: every failure they saw was the baseline's
  // (a failed canary attempt is retried on it), never the canary's alone.
  assert.ok(load.failedBy.length > 0, 'the outages reached the users');
  assert.deepEqual([...new Set(load.failedBy)], ['baseline']);
});

test('two control-plane processes on one database: one decision per tick, the other takes over when the leader dies, and a restart resumes', async () => {
  const schema = await freshSchema();
  cleanups.push(() => schema.drop());
  const env = {
    DATABASE_URL: schema.url,
    REDIS_URL,
    CANARY_REDIS_PREFIX: testPrefix(),
    CANARY_API_PORT: '0',
    CANARY_XDS_PORT: '0',
    CANARY_ANALYSIS_TICK: '100ms',
    CANARY_LEADER_LEASE: '1s',
    LOG_LEVEL: 'warn',
  };
  const start = () => spawnCanary<{ url: string }>(['control-plane'], { env, isReady: (m) => m.ready === true });
  const a = await start();
  const b = await start();
  cleanups.push(
    () => a.stop(),
    () => b.stop(),
  );
  const call = async (url: string, method: string, path: string, body?: unknown) =>
    (
      await fetch(url + path, {
        method,
        headers: { 'content-type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      })
    ).json();
  await call(a.ready.url, 'POST', '/v1/deployments', {
    name: 'ha',
    baseline: { version: 'v1', url: 'http://127.0.0.1:9' },
  });
  // No traffic: every analysis is inconclusive, so the canary stays and we can count decisions.
  await call(b.ready.url, 'POST', '/v1/deployments/ha/canary', {
    version: 'v2',
    url: 'http://127.0.0.1:10',
    weight: 37,
    policy: { interval: '1s' },
  });

  const db = new pg.Client({ connectionString: schema.url });
  await db.connect();
  cleanups.push(() => db.end());
  const analyses = async () =>
    (await db.query<{ at: Date; actor: string }>('SELECT at FROM analyses ORDER BY id')).rows.map((r) =>
      r.at.getTime(),
    );
  const leader = async () =>
    (await db.query<{ holder: string }>("SELECT holder FROM leases WHERE name = 'analysis'")).rows[0]?.holder;

  await sleep(4500);
  const before = await analyses();
  // At a 1 s interval, at most one analysis a second (a busy machine may run fewer, never more).
  assert.ok(before.length >= 1 && before.length <= 5, `${before.length} analyses in 4.5 s at a 1 s interval`);
  const gaps = before.slice(1).map((t, i) => t - before[i]);
  assert.ok(
    gaps.every((g) => g >= 900),
    `no two decisions in one tick: gaps ${gaps.join(', ')} ms`,
  );

  const holder = await leader();
  const [dead, survivor] = holder?.startsWith(`${a.child.pid}-`) ? [a, b] : [b, a];
  dead.child.kill('SIGKILL');
  const killedAt = Date.now();
  await eventually(
    async () => assert.ok((await leader())?.startsWith(`${survivor.child.pid}-`), 'the survivor holds the lease'),
    5000,
    50,
  );
  await eventually(
    async () =>
      assert.ok(
        (await analyses()).some((t) => t > killedAt),
        'an analysis after the leader died',
      ),
    5000,
    50,
  );
  const after = await analyses();
  const firstAfter = after.find((t) => t > killedAt)!;
  const lastBefore = Math.max(...after.filter((t) => t <= killedAt));
  assert.ok(
    firstAfter - lastBefore >= 900,
    `the new leader did not analyse again within the interval: ${firstAfter - lastBefore} ms after the last one`,
  );

  // Restart: stop the survivor, start a new process on the same database.
  await survivor.stop();
  const c = await start();
  cleanups.push(() => c.stop());
  const d = await call(c.ready.url, 'GET', '/v1/deployments/ha');
  assert.equal(d.canary.version, 'v2');
  assert.equal(d.canary.weight, 37);
  const restartAt = Date.now();
  await eventually(
    async () =>
      assert.ok(
        (await analyses()).some((t) => t > restartAt),
        'an analysis after the restart',
      ),
    5000,
    50,
  );
});

test('three heavy sticky keys at 50%: the verdict reports the sample ratio mismatch (event and all), and the canary is held, never promoted', async () => {
  const v1 = await startModelServer({ model: 'v1' });
  const v3 = await startModelServer({ model: 'v3' });
  const { stack, api } = await stackWith([v1, v3]);
  await api('POST', '/v1/deployments', { name: 'iris', baseline: { version: 'v1', url: v1.url } });
  await untilRouted(stack.proxy.adminUrl, 'iris');
  // Three clients, each with its own key, send all the traffic.
  let running = true;
  const keys = ['alice', 'bob', 'carol'];
  const loops = keys.map(async (key, i) => {
    while (running) {
      const r = await request(`${stack.proxy.url}/iris/predict`, {
        method: 'POST',
        body: JSON.stringify(flower(i)),
        headers: { 'content-type': 'application/json', 'x-canary-key': key },
      });
      await r.body.dump();
    }
  });
  cleanups.push(async () => {
    running = false;
    await Promise.all(loops);
  });
  await api('POST', '/v1/deployments/iris/canary', {
    version: 'v3',
    url: v3.url,
    weight: 50,
    policy: { interval: '1s', steps: [50, 100], minRequests: 20, stepDuration: '1s', warmup: null },
  });
  const held = await eventually(
    async () => {
      const a = await api('GET', '/v1/deployments/iris/analysis?limit=1');
      const rule = a.latest?.rules?.find((r: { rule: string }) => r.rule === 'sample_ratio');
      assert.equal(rule?.status, 'warn', `sample_ratio: ${rule?.summary ?? 'no analysis yet'}`);
      return a.latest;
    },
    60_000,
    100,
  );
  assert.equal(held.verdict, 'degraded');
  assert.ok(
    // Said either way it shows first: the share off its weight, or the traffic in too few keys.
    held.reasons.some((r: string) =>
      /the canary got [\d.]+% of routed requests .* at a 50% weight.*decisions held/.test(r),
    ),
    held.reasons.join('; '),
  );
  // Ten more analyses: still held at 50%, never promoted.
  const seen = held.id;
  await eventually(
    async () => {
      const a = await api('GET', '/v1/deployments/iris/analysis?limit=1');
      assert.ok(a.latest.id >= seen + 10, `analysis ${a.latest.id}`);
    },
    60_000,
    100,
  );
  const d = await api('GET', '/v1/deployments/iris');
  assert.equal(d.baseline.version, 'v1');
  assert.equal(d.canary?.weight, 50);
  const types = (await api('GET', '/v1/deployments/iris/events')).events.map((e: { type: string }) => e.type);
  assert.ok(types.includes('sample_ratio_mismatch'), types.join(', '));
  assert.ok(!types.includes('promoted') && !types.includes('step_advanced'), types.join(', '));
});

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { PrometheusSource } from '../../control-plane/metrics/prometheus.js';
import { type MetricsSource, ProxyStatsSource } from '../../control-plane/metrics/source.js';
import { resolvePolicy } from '../../control-plane/model/policy.js';
import { decide } from '../../control-plane/rollout/decide.js';
import { parseFaults } from '../../model-servers/faults.js';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { closedPort, eventually, startTestProxy } from '../helpers/servers.js';

// A real Prometheus (Debian's package, installed by .ci/run) scraping a real proxy every second.
let prom: ChildProcess, promUrl: string, dir: string, proxy: Awaited<ReturnType<typeof startTestProxy>>;
const models: RunningModelServer[] = [];
let t0 = 0,
  t1 = 0;

before(async () => {
  const [v1, bad, good] = await Promise.all([
    startModelServer({ model: 'v1' }),
    startModelServer({ model: 'v3', version: 'v2', faults: parseFaults({ errorRate: 0.3 }) }),
    startModelServer({ model: 'v3', version: 'v3' }),
  ]);
  models.push(v1, bad, good);
  proxy = await startTestProxy({
    deployments: {
      bad: {
        baseline: { version: 'v1', url: v1.url },
        canary: { version: 'v2', url: bad.url, weight: 30 },
        retryCanaryOnBaseline: false,
      },
      good: { baseline: { version: 'v1', url: v1.url }, canary: { version: 'v3', url: good.url, weight: 30 } },
    },
  });
  dir = await mkdtemp(path.join(os.tmpdir(), 'canary-prom-'));
  const port = await closedPort();
  promUrl = `http://127.0.0.1:${port}`;
  await writeFile(
    path.join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: proxy\n    static_configs: [{ targets: ['127.0.0.1:${proxy.adminPort}'] }]\n`,
  );
  prom = spawn(
    'prometheus',
    [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  await eventually(async () => assert.equal((await request(`${promUrl}/-/ready`)).statusCode, 200), 20_000, 200);
  // Traffic starts only once Prometheus has scraped the proxy's zeroed series, so increase() sees them start.
  await eventually(
    async () => {
      const r = (await (
        await request(
          `${promUrl}/api/v1/query?query=${encodeURIComponent('count(canary_proxy_requests_total{deployment="bad"})')}`,
        )
      ).body.json()) as { data: { result: unknown[] } };
      assert.equal(r.data.result.length, 1);
    },
    30_000,
    200,
  );
  await sleep(1100);
  t0 = Date.now();
  const flower = { features: { sepal_length: 6, sepal_width: 3, petal_length: 4.5, petal_width: 1.4 } };
  const deadline = Date.now() + 6000;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (Date.now() < deadline) {
        for (const d of ['bad', 'good']) {
          const r = await request(`${proxy.url}/${d}/predict`, { method: 'POST', body: JSON.stringify(flower) });
          await r.body.dump();
        }
      }
    }),
  );
  t1 = Date.now();
  await proxy.flushStats();
  await sleep(3000); // two more scrapes
});

after(async () => {
  prom?.kill('SIGTERM');
  await proxy?.close();
  for (const m of models) await m.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// The verdicts here are about errors (one canary fails, the other does not): latency limits are
// set wide, so that a short burst on a loaded machine cannot make the tail decide instead.
const policy = resolvePolicy({ minRequests: 50, thresholds: { latencyP95DeltaMs: 1000, latencyP99Ratio: 20 } });
async function verdict(source: MetricsSource, deployment: string, canary: string) {
  // The same window for both sources: the traffic burst plus the scrape delay.
  const from = t0 - 1000,
    to = t1 + 2500;
  const [b, c] = await Promise.all([
    source.versionStats(deployment, 'v1', from, to),
    source.versionStats(deployment, canary, from, to),
  ]);
  return {
    stats: { b, c },
    decision: decide(
      { weight: 30, stepStartedAt: from, paused: false, p99BreachSince: null },
      policy,
      { baseline: b, canary: c },
      to,
    ),
  };
}

test('the same canary gets the same verdict from the proxy stats and from Prometheus', async () => {
  const proxySource = new ProxyStatsSource(proxy.stats);
  const promSource = new PrometheusSource(promUrl, 'proxy');
  for (const [deployment, canary, expected] of [
    ['bad', 'v2', 'critical'],
    ['good', 'v3', 'healthy'],
  ] as const) {
    const fromProxy = await verdict(proxySource, deployment, canary);
    const fromProm = await verdict(promSource, deployment, canary);
    assert.equal(
      fromProxy.decision.verdict,
      expected,
      `${deployment} via proxy stats: ${fromProxy.decision.reasons.join('; ')}`,
    );
    assert.equal(
      fromProm.decision.verdict,
      expected,
      `${deployment} via Prometheus: ${fromProm.decision.reasons.join('; ')}`,
    );
    // Counts agree within Prometheus's extrapolation at the range edges.
    const ratio = fromProm.stats.c.requests / fromProxy.stats.c.requests;
    assert.ok(
      ratio > 0.8 && ratio < 1.25,
      `${deployment}: prometheus ${fromProm.stats.c.requests} vs proxy ${fromProxy.stats.c.requests} canary requests`,
    );
    assert.ok(fromProm.stats.c.p95 !== null && fromProm.stats.c.p95 > 0);
  }
});

test('a Prometheus that cannot be queried gives an error verdict, which holds', async () => {
  const down = new PrometheusSource(`http://127.0.0.1:${await closedPort()}`, 'proxy');
  let stats: unknown;
  try {
    stats = await verdict(down, 'bad', 'v2');
  } catch (err) {
    const d = decide(
      { weight: 30, stepStartedAt: 0, paused: false, p99BreachSince: null },
      policy,
      { error: (err as Error).message },
      Date.now(),
    );
    assert.equal(d.verdict, 'error');
    assert.deepEqual(d.actions, []);
    return;
  }
  assert.fail(`expected a failure, got ${JSON.stringify(stats)}`);
});

test('a bad query is reported as an error, not as zero traffic', async () => {
  const src = new PrometheusSource(promUrl, 'proxy');
  await assert.rejects(
    (src as unknown as { scalar(q: string, at: number): Promise<number | null> }).scalar('sum(', Date.now()),
    /prometheus query failed \(400\)/,
  );
});

test('every PromQL expression of the Grafana dashboard runs on a real Prometheus scraping a real proxy; the proxy panels return data', async () => {
  const dash = JSON.parse(await readFile('grafana/dashboards/canary-mesh.json', 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
    templating: { list: { query: { query: string } }[] };
  };
  const exprs = dash.panels.flatMap((p) =>
    p.targets.map((t) => ({ panel: p.title, expr: t.expr.replaceAll('$deployment', '.*') })),
  );
  assert.ok(exprs.length >= 10, `${exprs.length} expressions`);
  const at = (t1 + 2500) / 1000;
  for (const { panel, expr } of exprs) {
    const res = await request(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}&time=${at}`);
    const body = (await res.body.json()) as { status: string; error?: string; data: { result: unknown[] } };
    assert.equal(body.status, 'success', `${panel}: ${expr}: ${body.error}`);
    // This Prometheus scrapes a proxy (not a control plane): its panels must have data.
    if (
      expr.includes('canary_proxy_requests_total') ||
      expr.includes('canary_proxy_request_duration') ||
      expr.includes('canary_proxy_canary_weight')
    ) {
      assert.ok(body.data.result.length > 0, `${panel}: ${expr} returned no series`);
    }
  }
  // The deployment variable's query too.
  const variable = dash.templating.list[0].query.query;
  const m = /^label_values\((\w+), (\w+)\)$/.exec(variable)!;
  const values = (await (await request(`${promUrl}/api/v1/label/${m[2]}/values?match[]=${m[1]}`)).body.json()) as {
    data: string[];
  };
  assert.deepEqual(values.data.sort(), ['bad', 'good']);
});

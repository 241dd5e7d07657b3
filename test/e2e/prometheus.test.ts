import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { startStack } from '../../control-plane/main.js';
import { PrometheusSource } from '../../control-plane/metrics/prometheus.js';
import { type MetricsSource, ProxyStatsSource } from '../../control-plane/metrics/source.js';
import { resolvePolicy } from '../../control-plane/model/policy.js';
import { decide } from '../../control-plane/rollout/decide.js';
import { parseFaults } from '../../model-servers/faults.js';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { closedPort, eventually, silent, startTestProxy } from '../helpers/servers.js';

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
  // Traffic until the proxy's own stats have decided both canaries (however slow the machine is),
  // then as long again as Prometheus needs to have scraped all of it.
  let sending = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (sending) {
      for (const d of ['bad', 'good']) {
        const r = await request(`${proxy.url}/${d}/predict`, { method: 'POST', body: JSON.stringify(flower) });
        await r.body.dump();
      }
    }
  });
  const proxySource = new ProxyStatsSource(proxy.stats);
  await eventually(
    async () => {
      t1 = Date.now();
      for (const [d, c, expected] of CASES) assert.equal((await verdict(proxySource, d, c)).decision.verdict, expected);
    },
    120_000,
    500,
  );
  sending = false;
  await Promise.all(loops);
  t1 = Date.now();
  // Both sources have every request of the window: the proxy's stats store and Prometheus's
  // scrapes, whose counts agree within Prometheus's extrapolation at the range edges (its
  // scrapes come late and unevenly on a busy machine: looked at until they do, up to 60 s).
  // The verdicts compared below are those of one look at both.
  const promSource = new PrometheusSource(promUrl, 'proxy');
  await eventually(
    async () => {
      for (const [d, c] of CASES) {
        const [p, q] = [await verdict(proxySource, d, c), await verdict(promSource, d, c)];
        const ratio = q.stats.c.requests / p.stats.c.requests;
        assert.ok(ratio > 0.8 && ratio < 1.25, `${d}: prometheus ${q.stats.c.requests} vs proxy ${p.stats.c.requests}`);
        settled.set(d, { fromProxy: p, fromProm: q });
        // A late scrape leaves the window's tail thin (a good canary inconclusive): one more look.
        assert.equal(q.decision.verdict, p.decision.verdict, `${d}: ${q.decision.reasons.join('; ')}`);
      }
    },
    60_000,
    500,
  );
});

/** Per deployment: one look at both sources once their counts agree. */
const settled = new Map<
  string,
  { fromProxy: Awaited<ReturnType<typeof verdict>>; fromProm: Awaited<ReturnType<typeof verdict>> }
>();

const CASES = [
  ['bad', 'v2', 'critical'],
  ['good', 'v3', 'healthy'],
] as const;

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
  for (const [deployment, , expected] of CASES) {
    const { fromProxy, fromProm } = settled.get(deployment)!;
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
    assert.ok(fromProm.stats.c.p95 !== null && fromProm.stats.c.p95 > 0);
  }
});

test('a Prometheus that cannot be reached, or refuses to answer, gives an error verdict over the API, and the canary holds', async () => {
  // A real Prometheus that fails every query it is asked (each would load more than one sample: 422).
  const port = await closedPort();
  const strict = spawn(
    'prometheus',
    [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/strict`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--query.max-samples=1',
    ],
    { stdio: 'ignore' },
  );
  try {
    await eventually(
      async () => assert.equal((await request(`http://127.0.0.1:${port}/-/ready`)).statusCode, 200),
      30_000,
      200,
    );
    for (const [url, why] of [
      [`http://127.0.0.1:${await closedPort()}`, /ECONNREFUSED|fetch failed|connect/],
      [`http://127.0.0.1:${port}`, /prometheus query failed \(422\): query processing would load too many samples/],
    ] as const) {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'canary-prom-cp-'));
      const stack = await startStack(
        loadControlPlaneConfig({
          CANARY_DATA_DIR: dataDir,
          CANARY_API_PORT: '0',
          CANARY_XDS_PORT: 'off',
          CANARY_PROMETHEUS_URL: url,
        }),
        loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
        { logger: silent },
      );
      try {
        const api = async (method: string, p: string, body?: unknown) =>
          (
            await request(`${stack.controlPlane.url}${p}`, {
              method: method as 'GET',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(body ?? {}),
            })
          ).body.json() as Promise<any>;
        await api('POST', '/v1/deployments', { name: 'bad', baseline: { version: 'v1', url: models[0].url } });
        await api('POST', '/v1/deployments/bad/canary', {
          version: 'v2',
          url: models[1].url,
          weight: 30,
          policy: { metrics: 'prometheus', interval: '1h' },
        });
        const v = await api('POST', '/v1/deployments/bad/evaluate');
        assert.equal(v.verdict, 'error', JSON.stringify(v));
        assert.deepEqual(v.actions, []);
        assert.match(v.reasons.join('; '), why);
        const d = (await (await request(`${stack.controlPlane.url}/v1/deployments/bad`)).body.json()) as any;
        assert.equal(d.canary.weight, 30, 'the canary holds: never acted on missing data');
      } finally {
        await stack.close();
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  } finally {
    strict.kill('SIGTERM');
  }
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
  const at = Math.max(Date.now(), t1 + 2500) / 1000; // once the traffic has been scraped, as a person would look
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
  // The deployment variable's query too; every panel reads the dashboard's data-source variable,
  // so the dashboard shows data in any Grafana it is imported into (no hard-coded uid).
  const vars = dash.templating.list as unknown as { name: string; type: string; query: unknown }[];
  assert.deepEqual(
    vars.find((v) => v.name === 'datasource'),
    {
      name: 'datasource',
      type: 'datasource',
      label: 'Prometheus',
      query: 'prometheus',
      current: {},
      hide: 0,
      refresh: 1,
      regex: '',
      includeAll: false,
      multi: false,
    },
  );
  const uids = JSON.stringify(dash).match(/"uid":"[^"]*"/g) ?? [];
  assert.deepEqual(
    [...new Set(uids)].filter((u) => u !== `"uid":"\${datasource}"` && u !== '"uid":"canary-mesh"'),
    [],
    'data sources named only through the datasource variable',
  );
  const variable = (vars.find((v) => v.name === 'deployment')!.query as { query: string }).query;
  const m = /^label_values\((\w+), (\w+)\)$/.exec(variable)!;
  const values = (await (await request(`${promUrl}/api/v1/label/${m[2]}/values?match[]=${m[1]}`)).body.json()) as {
    data: string[];
  };
  assert.deepEqual(values.data.sort(), ['bad', 'good']);
});

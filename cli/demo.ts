import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { type ChildServer, spawnModelServer } from '../common/processes.js';
import { startThreadedStack, type ThreadedStack } from '../control-plane/stack/threaded.js';
import { loadIris } from '../model-servers/iris.js';
import { trainModel } from '../model-servers/models.js';
import { ApiClient } from './client.js';
import { DEMO_INTERVAL, out, step, waitFor } from './demo-kit.js';
import { llmAct } from './demo-llm.js';
import { color, msf, pct, table, time, verdictColor } from './format.js';

type Model = ChildServer<{ url: string; version: string; accuracy: number }>;

/**
 * Live prediction traffic through the proxy: real iris flowers, a few at a time, with a
 * progress line of the counts per variant. The numbers are what happened.
 */
class Traffic {
  counts = { baseline: 0, canary: 0, retried: 0, failed: 0 };
  private running = true;
  private loops: Promise<void>[] = [];
  private ticker: NodeJS.Timeout | null = null;
  constructor(
    private readonly url: string,
    private readonly concurrency = 4,
  ) {}

  start(): void {
    const rows = loadIris();
    this.loops = Array.from({ length: this.concurrency }, async () => {
      while (this.running) {
        const row = rows[Math.floor(Math.random() * rows.length)];
        try {
          const r = await request(this.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ features: row.features }),
          });
          await r.body.dump();
          if (r.statusCode !== 200) this.counts.failed++;
          else if (r.headers['x-canary-retried-from']) this.counts.retried++;
          else this.counts[r.headers['x-canary-variant'] === 'canary' ? 'canary' : 'baseline']++;
        } catch {
          this.counts.failed++;
        }
        await sleep(5); // ~150-200 requests/s in all: live traffic, not a load test
      }
    });
    this.ticker = setInterval(() => this.progress(), process.stdout.isTTY ? 200 : 2000);
  }

  progress(final = false): void {
    const c = this.counts;
    const total = c.baseline + c.canary + c.retried + c.failed;
    const line = `   requests ${String(total).padStart(5)}  baseline ${String(c.baseline).padStart(5)}  canary ${String(c.canary).padStart(4)}  canary failed→retried on baseline ${String(c.retried).padStart(3)}  failed to client ${c.failed}`;
    if (process.stdout.isTTY) process.stdout.write(`\r${line}${final ? '\n' : ''}`);
    else out(line);
  }

  reset(): void {
    this.counts = { baseline: 0, canary: 0, retried: 0, failed: 0 };
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.ticker) clearInterval(this.ticker);
    await Promise.all(this.loops);
  }
}

function healthTable(a: any): string {
  const rows = [
    ['baseline', a.baseline],
    ['canary', a.canary],
  ].map(([role, s]: any) => [
    role,
    s.version,
    s.requests,
    s.modelErrors,
    pct(s.errorRate),
    msf(s.p50),
    msf(s.p95),
    msf(s.p99),
  ]);
  return table(['ROLE', 'VERSION', 'REQUESTS', 'ERRORS', 'ERROR RATE', 'P50', 'P95', 'P99'], rows)
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');
}

function timeline(events: any[]): string {
  return table(
    ['TIME', 'EVENT', 'ACTOR', 'REASON'],
    [...events]
      .reverse()
      .map((e) => [
        time(e.at),
        e.type,
        e.actor,
        e.reason ? (e.reason.length > 90 ? `${e.reason.slice(0, 87)}...` : e.reason) : null,
      ]),
  )
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');
}

/** `canary demo`: the whole story, with real servers and real numbers, in under a minute. */
export async function runDemo(opts: { keep: boolean }): Promise<void> {
  const t0 = Date.now();
  const logger = createLogger('canary-demo', process.env.LOG_LEVEL ?? 'warn');
  const embedded = !process.env.DATABASE_URL;
  const dataDir = embedded
    ? (process.env.CANARY_DATA_DIR ?? (await mkdtemp(path.join(os.tmpdir(), 'canary-demo-'))))
    : '';
  const name = embedded && !process.env.CANARY_DATA_DIR ? 'iris' : `iris-${randomBytes(3).toString('hex')}`;
  const models: Model[] = [];
  let stack: ThreadedStack | null = null;
  let traffic: Traffic | null = null;
  const cleanup = async () => {
    await traffic?.stop();
    await stack?.close();
    await Promise.all(models.map((m) => m.stop()));
    if (embedded && !process.env.CANARY_DATA_DIR) await rm(dataDir, { recursive: true, force: true });
  };
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);

  try {
    out(
      color.bold('canary-mesh demo') +
        color.dim(
          `  (state: ${embedded ? 'embedded PostgreSQL' : 'PostgreSQL at DATABASE_URL'}, ${process.env.REDIS_URL ? 'Redis at REDIS_URL' : 'in-memory routes and stats'})`,
        ),
    );

    step(1, 'Train the models on the Iris data set (150 real flowers, 70/30 split)');
    for (const m of ['v1', 'v2', 'v3', 'v4'] as const) {
      const trained = trainModel(m);
      out(
        `   ${m}  offline accuracy ${(trained.accuracy * 100).toFixed(1)}% on ${trained.testRows} held-out flowers — ${trained.description}`,
      );
    }
    out(
      color.dim('   v2 looks fine offline: its evaluation silently dropped the flowers its log feature cannot score.'),
    );

    step(2, 'Start two independent model-server processes and the canary-mesh stack');
    models.push(
      await spawnModelServer('v1', [], { LOG_LEVEL: 'warn' }),
      await spawnModelServer('v2', [], { LOG_LEVEL: 'warn' }),
    );
    const [v1, v2] = models;
    out(`   v1 (baseline) at ${v1.ready.url}   v2 (candidate) at ${v2.ready.url}`);
    stack = await startThreadedStack(
      loadControlPlaneConfig({
        ...process.env,
        CANARY_DATA_DIR: dataDir || undefined,
        CANARY_API_PORT: opts.keep ? process.env.CANARY_API_PORT : '0',
        CANARY_XDS_PORT: opts.keep ? process.env.CANARY_XDS_PORT : '0',
        CANARY_ANALYSIS_TICK: '200ms',
      }),
      loadProxyConfig({
        ...process.env,
        CANARY_PROXY_PORT: opts.keep ? process.env.CANARY_PROXY_PORT : '0',
        CANARY_ADMIN_PORT: opts.keep ? process.env.CANARY_ADMIN_PORT : '0',
        CANARY_PROXY_HOST: '127.0.0.1',
        CANARY_STATS_FLUSH: '250ms',
      }),
      { logger, logLevel: process.env.LOG_LEVEL ?? 'warn' },
    );
    const api = new ApiClient(stack.controlPlane.url, process.env.CANARY_API_TOKEN || null, 'demo');
    out(`   control plane ${stack.controlPlane.url}   proxy ${stack.proxy.url}/${name}/predict`);

    for (const m of [v1, v2]) {
      const meta = (await (await request(`${m.ready.url}/metadata`)).body.json()) as any;
      if (m === v1)
        await api.call('POST', '/v1/deployments', {
          name,
          baseline: { version: 'v1', url: m.ready.url, metadata: meta },
        });
      else
        await api.call('POST', `/v1/deployments/${name}/versions`, { version: 'v2', url: m.ready.url, metadata: meta });
    }
    out(`   deployment ${name}: baseline v1; v2 registered with its metadata (trainedAt, dataVersion, accuracy)`);

    step(3, `Start v2 as a canary at 20% (analysis every ${DEMO_INTERVAL} for the demo; the default is 30s)`);
    traffic = new Traffic(`${stack.proxy.url}/${name}/predict`);
    traffic.start();
    await sleep(500);
    await api.call('POST', `/v1/deployments/${name}/canary`, {
      version: 'v2',
      weight: 20,
      policy: { interval: DEMO_INTERVAL, minRequests: 30 },
    });
    const started = Date.now();

    step(4, 'Live traffic through the proxy (real flowers; v2 breaks on those with sepal width ≤ 2.5 cm)');
    const d1 = await waitFor(
      'the rollback',
      async () => {
        const d = await api.call('GET', `/v1/deployments/${name}`);
        return d.canary === null ? d : null;
      },
      120_000, // generous: a busy machine only slows the traffic the evidence comes from
      async () =>
        `the last analysis said: ${((await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`)).latest?.reasons ?? ['none yet']).join('; ')}`,
    );
    traffic.progress(true);

    step(
      5,
      `The analysis found v2 critical and rolled it back on its own after ${((Date.now() - started) / 1000).toFixed(1)}s; baseline ${d1.baseline.version} kept serving`,
    );
    const a1 = await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`);
    out(`   verdict ${verdictColor(a1.latest.verdict)} at ${a1.latest.weight}%: ${a1.latest.reasons.join('; ')}`);
    out(healthTable(a1.latest));
    out(`   users saw ${traffic.counts.failed} failed requests: v2's failures were retried on v1.`);

    step(6, 'Event timeline');
    out(timeline((await api.call('GET', `/v1/deployments/${name}/events?limit=20`)).events));

    step(
      7,
      'Second act: v4 never fails and is as fast as v1, but answers differently: it is judged in shadow, before any user sees it',
    );
    const v4 = await spawnModelServer('v4', [], { LOG_LEVEL: 'warn' });
    models.push(v4);
    const shadow = {
      percent: 100,
      duration: DEMO_INTERVAL,
      compare: { field: '/prediction' },
      agreementMin: 0.95,
      minRequests: 100,
    };
    out(`   v4 at ${v4.ready.url}; policy.shadow ${JSON.stringify(shadow)}`);
    out(
      "   every request is answered by v1 and also sent to v4 off the user's path; the two answers are compared, v4's is discarded",
    );
    traffic.reset();
    await api.call('POST', `/v1/deployments/${name}/canary`, {
      version: 'v4',
      url: v4.ready.url,
      policy: { interval: DEMO_INTERVAL, minRequests: 30, shadow },
    });
    const shadowStarted = Date.now();
    await waitFor(
      'the shadow verdict',
      async () => ((await api.call('GET', `/v1/deployments/${name}`)).canary === null ? true : null),
      120_000,
      async () =>
        `the last analysis said: ${((await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`)).latest?.reasons ?? ['none yet']).join('; ')}`,
    );
    traffic.progress(true);
    const ag = await api.call('GET', `/v1/deployments/${name}/agreement`);
    out(
      `   rolled back in shadow after ${((Date.now() - shadowStarted) / 1000).toFixed(1)}s: v4 agreed with v1 on ${pct(ag.counts.agreement)} of ${ag.counts.compared} real flowers (the gate needs ${pct(shadow.agreementMin)}); ` +
        `v1 agrees with itself ${ag.noise.compared ? pct(ag.noise.agreement) : '(not sampled yet)'}`,
    );
    out(`   users received ${traffic.counts.canary} answers from v4 and saw ${traffic.counts.failed} failed requests`);
    out(`   how they differ (from \`canary agreement ${name}\`; inputs by SHA-256, never stored):`);
    out(
      table(
        ['REQUEST ID', 'INPUT SHA-256', 'V1 SAYS', 'V4 SAYS'],
        ag.examples.slice(0, 3).map((e: any) => [e.requestId, e.inputSha256.slice(0, 12), e.baseline, e.canary]),
      ).replace(/^/gm, '   '),
    );

    step(8, 'Third act: a good v3 walks its steps (20% → 50% → 100%) and is promoted');
    const v3 = await spawnModelServer('v3', [], { LOG_LEVEL: 'warn' });
    models.push(v3);
    const meta3 = await (await request(`${v3.ready.url}/metadata`)).body.json();
    await api.call('POST', `/v1/deployments/${name}/versions`, { version: 'v3', url: v3.ready.url, metadata: meta3 });
    // A fresh model server answers its first requests slowly (JIT, caches); like any rollout,
    // warm it before it meets users, so its latency is its own and not its cold start.
    const rows = loadIris();
    for (let i = 0; i < 300; i++) {
      const r = await request(`${v3.ready.url}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ features: rows[i % rows.length].features }),
      });
      await r.body.dump();
    }
    out(
      '   v3 warmed up with 300 requests sent to it directly (a cold model server answers its first requests slowly)',
    );
    traffic.reset();
    await api.call('POST', `/v1/deployments/${name}/canary`, {
      version: 'v3',
      // Warmed by hand just above: no warm-up (policy.warmup) before its latency is judged.
      policy: { interval: DEMO_INTERVAL, steps: [20, 50, 100], minRequests: 30, warmup: null },
    });
    let lastWeight = -1;
    const d2 = await waitFor(
      'the promotion',
      async () => {
        const d = await api.call('GET', `/v1/deployments/${name}`);
        if (d.canary && d.canary.weight !== lastWeight) {
          lastWeight = d.canary.weight;
          if (process.stdout.isTTY) process.stdout.write('\n');
          out(`   v3 at ${d.canary.weight}%`);
        }
        if (d.canary === null && d.baseline.version !== 'v3')
          throw new Error(`demo: v3 was rolled back unexpectedly; see canary history ${name}`);
        return d.canary === null ? d : null;
      },
      // A step is decided when its evidence is in, not after a fixed time: on a busy machine the
      // latency rules need more requests (its tail is noisier), so the demo waits for them.
      180_000,
      async () =>
        `the last analysis said: ${((await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`)).latest?.reasons ?? ['none yet']).join('; ')}`,
    );
    traffic.progress(true);
    out(`   promoted: the baseline is now ${color.green(d2.baseline.version)}`);
    const a2 = await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`);
    out(healthTable(a2.latest));
    out(timeline((await api.call('GET', `/v1/deployments/${name}/events?limit=6`)).events));
    await traffic.stop();
    traffic = null;

    await llmAct(9, {
      api,
      proxyUrl: stack.proxy.url,
      name: name.replace('iris', 'chat'),
      models: models as ChildServer<unknown>[],
    });

    const versions = (await api.call('GET', `/v1/deployments/${name}/versions`)).versions;
    out(`\n   versions: ${versions.map((v: any) => `${v.version} ${v.state}`).join(', ')}`);
    out(
      `\n${color.green('done')} in ${((Date.now() - t0) / 1000).toFixed(1)}s. Dashboard: ${stack.controlPlane.url}/  (run \`npx canary demo --keep\` to keep it up)`,
    );
    if (opts.keep) {
      out(
        `keeping the stack up: dashboard ${stack.controlPlane.url}/, proxy ${stack.proxy.url}/${name}/predict; Ctrl-C to stop`,
      );
      process.env.CANARY_API_URL ??= stack.controlPlane.url;
      await new Promise<void>(() => {});
    }
  } finally {
    process.off('SIGINT', onSignal);
    if (!opts.keep) await cleanup();
  }
}

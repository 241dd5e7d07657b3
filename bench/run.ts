// `npm run bench`: side-by-side throughput and latency of the model server direct, the
// canary-mesh proxy (20% canary, metrics and stats on) and an http-proxy split, in one run
// on one machine, reported as ratios to direct. Results go to bench/results/.

import { execSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import { parseDuration } from '../common/duration.js';
import { spawnCanary, spawnModelServer, spawnProxy } from '../common/processes.js';
import { grpcBench } from './grpc.js';
import { openLoop } from './open-loop.js';
import { headCommit } from './report.js';
import { startupBench } from './startup.js';
import { streamBench } from './streams.js';

const DURATION_S = Math.round(parseDuration(process.env.BENCH_DURATION ?? '10s') / 1000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const OPEN_LOOP_RPS = Number(process.env.BENCH_RATE ?? 2000);
const WEIGHT = 20;
const here = path.dirname(fileURLToPath(import.meta.url));
const body = JSON.stringify({ features: { sepal_length: 6.1, sepal_width: 2.9, petal_length: 4.7, petal_width: 1.4 } });

interface Row {
  scenario: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  cpuUsPerRequest?: number;
  mainThreadCpuUsPerRequest?: number;
}

const CLOCK_TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
/** CPU time (user + system) a process has used, in µs, from /proc; with `mainThread`, its main thread's only. */
function cpuMicros(pid: number, mainThread = false): number {
  const stat = mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`;
  const fields = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6; // utime, stime
}
/**
 * Runs `work` and adds the CPU µs per request that the processes `pids` spent on it, in all
 * their threads and in their main threads (the event loop that proxies requests; `canary up`'s
 * database has a thread of its own).
 */
async function withCpu(pids: number[], work: () => Promise<Row>): Promise<Row> {
  const before = pids.map((p) => cpuMicros(p));
  const beforeMain = pids.map((p) => cpuMicros(p, true));
  const row = await work();
  const used = pids.map((p) => cpuMicros(p)).reduce((a, v, i) => a + v - before[i], 0);
  const usedMain = pids.map((p) => cpuMicros(p, true)).reduce((a, v, i) => a + v - beforeMain[i], 0);
  row.cpuUsPerRequest = +(used / (row.rps * DURATION_S)).toFixed(1);
  row.mainThreadCpuUsPerRequest = +(usedMain / (row.rps * DURATION_S)).toFixed(1);
  process.stderr.write(
    `  ${' '.repeat(34)} ${row.cpuUsPerRequest} µs CPU per request in the measured process(es), ${row.mainThreadCpuUsPerRequest} µs on their main threads\n`,
  );
  return row;
}

/**
 * What a person at the dashboard (and a script polling the API) makes the control plane do:
 * the dashboard's own requests for a deployment, over and over, until stopped. It runs in a
 * thread of its own so its reading never delays the open-loop generator beside it.
 */
function controlPlaneReader(api: string, deployment: string) {
  const paths = [
    `/v1/deployments/${deployment}`,
    `/v1/deployments/${deployment}/analysis?limit=200`,
    `/v1/deployments/${deployment}/events?limit=100`,
    `/v1/deployments/${deployment}/versions`,
    `/v1/deployments/${deployment}/agreement`,
    '/v1/deployments',
  ];
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     let running = true, requests = 0;
     parentPort.once('message', () => { running = false; });
     const loops = [0, 1].map(async (i) => {
       for (let j = i; running; j++) {
         await fetch(workerData.api + workerData.paths[j % workerData.paths.length]).then((r) => r.arrayBuffer());
         requests++;
       }
     });
     Promise.all(loops).then(() => parentPort.postMessage(requests));`,
    { eval: true, workerData: { api, paths } },
  );
  return {
    stop: async (): Promise<number> => {
      worker.postMessage('stop');
      const [requests] = await once(worker, 'message');
      await worker.terminate();
      return requests;
    },
  };
}

/** The prediction log's counters on a proxy's admin port. */
async function predictionLogCounts(admin: string) {
  const text = await fetch(`${admin}/metrics`).then((r) => r.text());
  const value = (name: string) => Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'))?.[1] ?? NaN);
  return {
    written: value('canary_proxy_prediction_log_written_total'),
    dropped: value('canary_proxy_prediction_log_dropped_total'),
    queued: value('canary_proxy_prediction_log_queue'),
  };
}

function print(row: Row): Row {
  process.stderr.write(
    `  ${row.scenario.padEnd(34)} ${row.rps.toFixed(0).padStart(7)} rps  p50 ${row.p50.toFixed(3)} ms  p99 ${row.p99.toFixed(3)} ms  errors ${row.errors + row.non2xx}\n`,
  );
  return row;
}

/** Closed loop: autocannon with a fixed number of connections, as fast as it goes. */
async function load(scenario: string, url: string): Promise<Row> {
  const r = await autocannon({
    url,
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
    connections: CONNECTIONS,
    duration: DURATION_S,
  });
  return print({
    scenario,
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
  });
}

/** Open loop at a fixed rate, latency in microseconds (see open-loop.ts). */
async function fixedRate(scenario: string, url: string, durationS = DURATION_S, rps = OPEN_LOOP_RPS): Promise<Row> {
  const r = await openLoop(url, body, rps, durationS * 1000);
  return print({ scenario, rps: r.achievedRps, p50: r.p50, p99: r.p99, errors: r.errors, non2xx: 0 });
}

/** One of the reference proxies in bench/ (a script that prints a ready line with its port). */
async function startReference(script: string, baseline: string, canary: string) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, script), baseline, canary, String(WEIGHT)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  for await (const line of createInterface({ input: child.stdout! })) {
    const msg = JSON.parse(line);
    if (msg.ready)
      return {
        url: `http://127.0.0.1:${msg.port}`,
        pid: child.pid!,
        stop: async () => {
          child.kill('SIGTERM');
          await once(child, 'exit');
        },
      };
  }
  throw new Error(`${script} did not start`);
}

/**
 * nginx with split_clients and upstream keep-alive, when installed: the floor for any proxy.
 * One worker per core, its master and workers' CPU counted.
 */
async function startNginx(
  baseline: string,
  canary: string,
  dir: string,
): Promise<{ url: string; pids: () => number[]; stop(): Promise<void> } | null> {
  try {
    execSync('command -v nginx', { stdio: 'ignore' });
  } catch {
    return null;
  }
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = `daemon off; worker_processes auto; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  upstream baseline { server ${new URL(baseline).host}; keepalive 128; }
  upstream canary { server ${new URL(canary).host}; keepalive 128; }
  split_clients "\${request_id}" $variant { ${WEIGHT}% canary; * baseline; }
  server { listen 127.0.0.1:${port};
    location /iris/ { rewrite ^/iris(/.*)$ $1 break; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://$variant; } } }`;
  await writeFile(path.join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: 'inherit' });
  for (let i = 0; i < 50; i++) {
    try {
      await autocannon({ url: `http://127.0.0.1:${port}/iris/healthz`, amount: 1 });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const pids = () => [
    child.pid!,
    ...execSync(`pgrep -P ${child.pid}`).toString().trim().split('\n').map(Number).filter(Boolean),
  ];
  return {
    url: `http://127.0.0.1:${port}`,
    pids,
    stop: async () => {
      child.kill('SIGQUIT');
      await once(child, 'exit');
    },
  };
}

async function main(): Promise<void> {
  process.stderr.write(
    `canary-mesh bench: ${DURATION_S}s per run, ${CONNECTIONS} connections, open loop at ${OPEN_LOOP_RPS} rps, ${os.cpus().length} cores\n`,
  );
  const v1 = await spawnModelServer('v1', [], { LOG_LEVEL: 'warn' });
  const v2 = await spawnModelServer('v3', ['--version', 'v2'], { LOG_LEVEL: 'warn' });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-bench-'));
  const routesFile = path.join(dir, 'routes.json');
  await writeFile(
    routesFile,
    JSON.stringify({
      version: 1,
      deployments: {
        iris: {
          baseline: { version: 'v1', url: v1.ready.url },
          canary: { version: 'v2', url: v2.ready.url, weight: WEIGHT },
        },
      },
    }),
  );
  const proxy = await spawnProxy({ CANARY_ROUTES_FILE: routesFile, LOG_LEVEL: 'warn' });
  // The same proxy with the canary in a shadow phase: users get v1 only, every request is also sent to v2 and compared.
  const shadowFile = path.join(dir, 'routes-shadow.json');
  await writeFile(
    shadowFile,
    JSON.stringify({
      version: 1,
      deployments: {
        iris: {
          baseline: { version: 'v1', url: v1.ready.url },
          canary: { version: 'v2', url: v2.ready.url, weight: 0 },
          shadow: {
            percent: 100,
            noisePercent: 5,
            timeoutMs: 10_000,
            maxConcurrency: 32,
            compare: { fields: ['/prediction'] },
          },
        },
      },
    }),
  );
  const shadowProxy = await spawnProxy({ CANARY_ROUTES_FILE: shadowFile, LOG_LEVEL: 'warn' });
  const shadowUrl = `http://127.0.0.1:${shadowProxy.ready.port}/iris/predict`;
  // `canary up` on the embedded database, with the prediction log on: the whole product in one
  // process; and beside it the same with the log off, which shows what the log costs.
  const startUp = async (dataDir: string, env: Record<string, string> = {}) => {
    const child = await spawnCanary<{ api: string; proxy: string; admin: string }>(['up'], {
      env: {
        CANARY_DATA_DIR: dataDir,
        CANARY_PROXY_PORT: '0',
        CANARY_ADMIN_PORT: '0',
        CANARY_API_PORT: '0',
        CANARY_XDS_PORT: 'off',
        CANARY_PROXY_HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        REDIS_URL: '',
        DATABASE_URL: '',
        ...env,
      },
      isReady: (m) => m.ready === true && m.component === 'up',
      timeoutMs: 60_000,
    });
    const call = (p: string, b: unknown) =>
      fetch(`${child.ready.api}${p}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(b),
      }).then((r) => r.json());
    await call('/v1/deployments', { name: 'iris', baseline: { version: 'v1', url: v1.ready.url } });
    await call('/v1/deployments/iris/canary', {
      version: 'v2',
      url: v2.ready.url,
      weight: WEIGHT,
      policy: { autoPromote: false, autoRollback: false, interval: '1h' },
    });
    return { child: child.child, stop: child.stop, ready: child.ready, url: `${child.ready.proxy}/iris/predict` };
  };
  const up = await startUp(path.join(dir, 'data'));
  const upUrl = up.url;
  const upNoLog = await startUp(path.join(dir, 'data-no-log'), { CANARY_PREDICTION_QUEUE: '0' });
  const hp = await startReference('http-proxy-split.ts', v1.ready.url, v2.ready.url);
  const minimal = await startReference('minimal-proxy.ts', v1.ready.url, v2.ready.url);
  const nginx = await startNginx(v1.ready.url, v2.ready.url, dir);
  const proxyUrl = `http://127.0.0.1:${proxy.ready.port}/iris/predict`;
  try {
    process.stderr.write('warming up…\n');
    await autocannon({ url: proxyUrl, method: 'POST', body, duration: 2, connections: 16 });
    await autocannon({ url: `${hp.url}/iris/predict`, method: 'POST', body, duration: 2, connections: 16 });
    await autocannon({ url: `${minimal.url}/iris/predict`, method: 'POST', body, duration: 2, connections: 16 });
    await autocannon({ url: upUrl, method: 'POST', body, duration: 2, connections: 16 });
    await autocannon({ url: upNoLog.url, method: 'POST', body, duration: 2, connections: 16 });
    await autocannon({ url: shadowUrl, method: 'POST', body, duration: 2, connections: 16 });
    if (nginx)
      await autocannon({ url: `${nginx.url}/iris/predict`, method: 'POST', body, duration: 2, connections: 16 });
    process.stderr.write('closed loop (as fast as it goes):\n');
    const direct = await withCpu([v1.child.pid!], () => load('direct (model server)', `${v1.ready.url}/predict`));
    const ours = await withCpu([proxy.child.pid!], () => load('canary-mesh proxy, 20% canary', proxyUrl));
    const shadowRow = await withCpu([shadowProxy.child.pid!], () =>
      load('canary-mesh proxy, canary in shadow (100% mirrored)', shadowUrl),
    );
    const upRow = await withCpu([up.child.pid!], () => load('canary up (embedded DB, prediction log)', upUrl));
    // Did the prediction log keep up at full load (its database thread yields the cores to users' requests)?
    const predictionLog = await predictionLogCounts(up.ready.admin);
    process.stderr.write(
      `  ${' '.repeat(34)} prediction log: ${predictionLog.written} rows written, ${predictionLog.dropped} dropped, ${predictionLog.queued} queued\n`,
    );
    const upNoLogRow = await withCpu([upNoLog.child.pid!], () => load('canary up, prediction log off', upNoLog.url));
    const hpRow = await withCpu([hp.pid], () => load('http-proxy split, keep-alive', `${hp.url}/iris/predict`));
    const minimalRow = await withCpu([minimal.pid], () =>
      load('minimal undici Pool.stream proxy', `${minimal.url}/iris/predict`),
    );
    const nginxRow = nginx
      ? await withCpu(nginx.pids(), () => load('nginx split_clients, keep-alive', `${nginx.url}/iris/predict`))
      : null;
    process.stderr.write(`open loop at ${OPEN_LOOP_RPS} rps:\n`);
    await fixedRate('warm-up (not reported)', `${v1.ready.url}/predict`, 3);
    const directOpen = await fixedRate(`direct @${OPEN_LOOP_RPS}`, `${v1.ready.url}/predict`);
    const oursOpen = await fixedRate(`canary-mesh proxy @${OPEN_LOOP_RPS}`, proxyUrl);
    // At the full rate the proxy has no spare capacity: it sheds shadows (maxProxyLag) rather than delay users.
    const shadowFull = await fixedRate(`canary-mesh proxy, canary in shadow @${OPEN_LOOP_RPS}`, shadowUrl);
    // A shadow doubles the upstream work: compared at half the rate, side by side with no shadow.
    const half = Math.round(OPEN_LOOP_RPS / 2);
    const splitHalf = await fixedRate(`canary-mesh proxy, 20% canary @${half}`, proxyUrl, DURATION_S, half);
    const shadowHalf = await fixedRate(`canary-mesh proxy, canary in shadow @${half}`, shadowUrl, DURATION_S, half);

    // Control-plane load beside traffic: users' latency through `canary up` at a fixed rate,
    // with and without the dashboard's API requests in a loop, side by side.
    const UP_RATE = 1000;
    const upQuiet = await fixedRate(`canary up @${UP_RATE}`, upUrl, DURATION_S, UP_RATE);
    const reader = controlPlaneReader(up.ready.api, 'iris');
    const upBusy = await fixedRate(`canary up @${UP_RATE}, API read in a loop`, upUrl, DURATION_S, UP_RATE);
    const apiRequests = await reader.stop();
    process.stderr.write(`  (${apiRequests} API requests, ${(apiRequests / DURATION_S).toFixed(0)}/s, beside it)\n`);

    const ratio = (r: Row) => +(r.rps / direct.rps).toFixed(3);
    const summary = {
      throughputRatio: {
        canaryMesh: ratio(ours),
        canaryUp: ratio(upRow),
        minimalUndiciProxy: ratio(minimalRow),
        nginx: nginxRow ? ratio(nginxRow) : null,
        httpProxy: ratio(hpRow),
      },
      // The targets: canary up's throughput at least 0.9× canary proxy's and 0.8× the minimal
      // proxy's, with CPU per request on its proxy's thread within 1.1× canary proxy's.
      canaryUpVsProxyThroughput: +(upRow.rps / ours.rps).toFixed(3),
      canaryUpVsMinimalThroughput: +(upRow.rps / minimalRow.rps).toFixed(3),
      // What limits it: canary up with its prediction log off, against canary proxy.
      canaryUpNoLogVsProxyThroughput: +(upNoLogRow.rps / ours.rps).toFixed(3),
      canaryUpPredictionLogAfterClosedLoop: predictionLog,
      canaryUpMainThreadCpuVsProxy: +(
        (upRow.mainThreadCpuUsPerRequest ?? 0) / (ours.mainThreadCpuUsPerRequest ?? 1)
      ).toFixed(3),
      // Users' latency through canary up while the control plane's API is read in a loop (the target: unchanged).
      controlPlaneLoadBesideTraffic: {
        rps: UP_RATE,
        apiRequestsPerSecond: +(apiRequests / DURATION_S).toFixed(0),
        userP50Ms: { quiet: upQuiet.p50, apiBusy: upBusy.p50 },
        userP99Ms: { quiet: upQuiet.p99, apiBusy: upBusy.p99 },
        userP99VsQuiet: +(upBusy.p99 / upQuiet.p99).toFixed(3),
      },
      cpuUsPerRequest: {
        modelServer: direct.cpuUsPerRequest,
        canaryMeshProxy: ours.cpuUsPerRequest,
        canaryUp: upRow.cpuUsPerRequest,
        minimalUndiciProxy: minimalRow.cpuUsPerRequest,
        nginx: nginxRow?.cpuUsPerRequest ?? null,
        httpProxy: hpRow.cpuUsPerRequest,
      },
      // The target: canary-mesh's CPU per request within 1.1× the minimal proxy's.
      cpuVsMinimalProxy: +((ours.cpuUsPerRequest ?? 0) / (minimalRow.cpuUsPerRequest ?? 1)).toFixed(3),
      // What a shadow costs users: their latency with every request mirrored and compared, over the same proxy without.
      shadow: {
        throughputVsNoShadow: +(shadowRow.rps / ours.rps).toFixed(3),
        cpuUsPerRequest: shadowRow.cpuUsPerRequest,
        atHalfRate: {
          rps: half,
          userP50Ms: { noShadow: splitHalf.p50, shadow: shadowHalf.p50 },
          userP99Ms: { noShadow: splitHalf.p99, shadow: shadowHalf.p99 },
          userP99VsNoShadow: +(shadowHalf.p99 / splitHalf.p99).toFixed(3),
        },
        atFullRate: {
          rps: OPEN_LOOP_RPS,
          userP99Ms: { noShadow: oursOpen.p99, shadow: shadowFull.p99 },
          userP99VsNoShadow: +(shadowFull.p99 / oursOpen.p99).toFixed(3),
        },
      },
      addedLatencyAt2000rps: {
        p50Ms: +(oursOpen.p50 - directOpen.p50).toFixed(3),
        p99Ms: +(oursOpen.p99 - directOpen.p99).toFixed(3),
        targetP50Ms: 0.5,
        targetP99Ms: 2,
      },
    };
    // LLM streams, side by side (bench/streams.ts): after the servers above are stopped would be
    // quieter, but they are idle now, and one run keeps one machine state.
    const streams = await streamBench(DURATION_S);
    // Unary gRPC, side by side (bench/grpc.ts): direct, canary-mesh, a minimal node:http2 proxy.
    const grpcRows = await grpcBench(DURATION_S);
    // `canary up`'s start-up (bench/startup.ts): the command, and the same stack on one thread.
    process.stderr.write('canary up start-up (median of 3):\n');
    const startup = await startupBench(3);
    const commit = headCommit();
    const report = {
      date: new Date().toISOString(),
      commit,
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        memGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
        platform: `${os.platform()} ${os.release()}`,
      },
      settings: {
        durationS: DURATION_S,
        connections: CONNECTIONS,
        openLoopRps: OPEN_LOOP_RPS,
        canaryWeight: WEIGHT,
        note: 'load generator, proxies and model servers share the machine',
      },
      closedLoop: [direct, ours, shadowRow, upRow, upNoLogRow, minimalRow, ...(nginxRow ? [nginxRow] : []), hpRow],
      openLoop: [directOpen, oursOpen, shadowFull, splitHalf, shadowHalf, upQuiet, upBusy],
      streams,
      grpc: grpcRows,
      startup,
      summary: { ...summary, streams: streams.summary, grpc: grpcRows.summary, startup },
    };
    await mkdir(path.join(here, 'results'), { recursive: true });
    const file = path.join(here, 'results', `${report.date.slice(0, 19).replace(/[:T]/g, '-')}-${commit}.json`);
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(
      `${JSON.stringify(report.summary, null, 2)}\nwritten to ${path.relative(process.cwd(), file)}\n`,
    );
  } finally {
    await Promise.all([
      v1.stop(),
      v2.stop(),
      proxy.stop(),
      shadowProxy.stop(),
      up.stop(),
      upNoLog.stop(),
      hp.stop(),
      minimal.stop(),
      nginx?.stop(),
    ]);
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});

// `npm run bench:grpc` (also part of `npm run bench`): unary gRPC ModelInfer calls, side by
// side in one run: the model server direct, through canary-mesh (20% canary, metrics and
// stats on) and through a minimal node:http2 forwarding proxy (the floor). The load generator
// is @grpc/grpc-js in this process. Two measures, the proxies taking turns in short slices:
// - closed loop: 32 calls in flight, as fast as each target answers (calls per second);
// - equal rate: both proxies sent the same calls per second on a fixed schedule (80% of what
//   canary-mesh reached closed-loop), and the proxy process's CPU per call compared there. A
//   node proxy's CPU per call falls as its load rises (more calls share each event-loop turn
//   and each write), so per-call CPU from the closed loop compares two different loads.
// BENCH_PROXY_NODE_OPTIONS goes to both proxies' NODE_OPTIONS (a profiler's preload, to see where
// their CPU goes side by side).

import { execSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { parseDuration } from '../common/duration.js';
import { spawnModelServer, spawnProxy } from '../common/processes.js';
import { loadInferenceProtos } from '../model-servers/grpc-infer.js';

import { writeReport } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WEIGHT = 20;
/** Length of one turn of each proxy in the side-by-side run. */
const SLICE_S = 3;

export interface GrpcRow {
  scenario: string;
  callsPerSecond: number;
  p50: number;
  p99: number;
  failed: number;
  /** CPU per call in closed loop (at this row's own calls per second). */
  cpuUsPerCall?: number;
  /** CPU per call when sent `equalRate` calls per second, as the other proxy was. */
  cpuUsPerCallAtEqualRate?: number;
}

const CLOCK_TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
async function cpuMicros(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

/** One client channel to a target, warmed up; `run` and `atRate` measure slices of calls on it. */
async function openLoad(scenario: string, target: string, concurrency: number, pid?: number) {
  const { Inference } = loadInferenceProtos();
  const client = new Inference(target, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<string, (r: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => void>;
  const md = new grpc.Metadata();
  md.set('x-canary-deployment', 'infer');
  const request = {
    model_name: 'sum',
    inputs: [{ name: 'x', datatype: 'FP32', shape: ['4'], contents: { fp32_contents: [6.1, 2.9, 4.7, 1.4] } }],
  };
  const errors = new Map<string, number>();
  const one = () =>
    new Promise<boolean>((resolve) =>
      client.ModelInfer(request, md, (e) => {
        if (e) errors.set(e.message, (errors.get(e.message) ?? 0) + 1);
        resolve(!e);
      }),
    );
  for (let i = 0; i < 200; i++) await one(); // warm-up: connections, JIT
  const latencies: number[] = [];
  let failed = 0;
  let cpu = 0;
  let seconds = 0;
  const rated = { calls: 0, cpu: 0, failed: 0 };
  return {
    /** `concurrency` calls in flight for `durationS`; adds to this target's totals. */
    async run(durationS: number) {
      const cpu0 = pid ? await cpuMicros(pid) : 0;
      const end = performance.now() + durationS * 1000;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end) {
            const t0 = performance.now();
            if (!(await one())) failed++;
            latencies.push(performance.now() - t0);
          }
        }),
      );
      if (pid) cpu += (await cpuMicros(pid)) - cpu0;
      seconds += durationS;
    },
    /** `rate` calls a second started on a fixed schedule for `durationS` (open loop); adds to the equal-rate totals. */
    async atRate(durationS: number, rate: number) {
      const cpu0 = pid ? await cpuMicros(pid) : 0;
      const total = Math.round(rate * durationS);
      const start = performance.now();
      const inflight: Promise<void>[] = [];
      for (let i = 0; i < total; i++) {
        const wait = start + (i * 1000) / rate - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        inflight.push(one().then((ok) => void (ok || rated.failed++)));
      }
      await Promise.all(inflight);
      if (pid) rated.cpu += (await cpuMicros(pid)) - cpu0;
      rated.calls += total;
    },
    /** Closed-loop calls per second so far. */
    callsPerSecond: () => latencies.length / seconds,
    /** The totals over every slice, printed. */
    row(): GrpcRow {
      for (const [message, n] of errors) process.stderr.write(`  ${scenario}: ${n} × ${message}\n`);
      client.close();
      latencies.sort((a, b) => a - b);
      const row: GrpcRow = {
        scenario,
        callsPerSecond: +(latencies.length / seconds).toFixed(0),
        p50: +latencies[Math.floor(latencies.length * 0.5)].toFixed(3),
        p99: +latencies[Math.floor(latencies.length * 0.99)].toFixed(3),
        failed: failed + rated.failed,
        ...(pid ? { cpuUsPerCall: +(cpu / latencies.length).toFixed(1) } : {}),
        ...(pid && rated.calls ? { cpuUsPerCallAtEqualRate: +(rated.cpu / rated.calls).toFixed(1) } : {}),
      };
      process.stderr.write(
        `  ${scenario.padEnd(34)} ${String(row.callsPerSecond).padStart(7)} calls/s  p50 ${row.p50} ms  p99 ${row.p99} ms  failed ${row.failed}${row.cpuUsPerCall ? `  CPU per call ${row.cpuUsPerCall} µs closed-loop, ${row.cpuUsPerCallAtEqualRate} µs at the equal rate` : ''}\n`,
      );
      return row;
    },
  };
}

async function minimalProxy(baseline: string, canary: string) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, 'minimal-h2-proxy.ts'), baseline, canary, String(WEIGHT)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: process.env.BENCH_PROXY_NODE_OPTIONS },
    },
  );
  for await (const line of createInterface({ input: child.stdout! })) {
    const msg = JSON.parse(line);
    if (msg.ready)
      return {
        target: `127.0.0.1:${msg.port}`,
        pid: child.pid!,
        stop: async () => {
          child.kill('SIGTERM');
          await once(child, 'exit');
        },
      };
  }
  throw new Error('minimal-h2-proxy.ts did not start');
}

export async function grpcBench(durationS: number, concurrency = 32) {
  process.stderr.write(
    `gRPC unary ModelInfer, ${durationS}s per target (the proxies in turns of ${SLICE_S}s), ${concurrency} calls in flight on one channel\n`,
  );
  const v1 = await spawnModelServer('grpc', ['--version', 'v1'], { LOG_LEVEL: 'warn' });
  const v2 = await spawnModelServer('grpc', ['--version', 'v2'], { LOG_LEVEL: 'warn' });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-bench-grpc-'));
  const routesFile = path.join(dir, 'routes.json');
  await writeFile(
    routesFile,
    JSON.stringify({
      version: 1,
      deployments: {
        infer: {
          baseline: { version: 'v1', url: v1.ready.url },
          canary: { version: 'v2', url: v2.ready.url, weight: WEIGHT },
        },
      },
    }),
  );
  const proxy = await spawnProxy({
    CANARY_ROUTES_FILE: routesFile,
    LOG_LEVEL: 'warn',
    NODE_OPTIONS: process.env.BENCH_PROXY_NODE_OPTIONS,
  });
  const minimal = await minimalProxy(v1.ready.url, v2.ready.url);
  try {
    const directLoad = await openLoad('direct (model server)', v1.ready.url.slice('h2c://'.length), concurrency);
    await directLoad.run(durationS);
    const direct = directLoad.row();
    // The two proxies take turns in short slices, so a noisy neighbour's burst on this shared
    // machine falls on both alike rather than on one whole run.
    const oursLoad = await openLoad(
      `canary-mesh proxy (${WEIGHT}% canary)`,
      `127.0.0.1:${proxy.ready.port}`,
      concurrency,
      proxy.child.pid,
    );
    const floorLoad = await openLoad('minimal node:http2 proxy', minimal.target, concurrency, minimal.pid);
    const slices = Math.max(1, Math.round(durationS / SLICE_S));
    for (let i = 0; i < slices; i++) {
      await oursLoad.run(durationS / slices);
      await floorLoad.run(durationS / slices);
    }
    const closedLoop = oursLoad.callsPerSecond();
    const equalRate = Math.round((0.8 * closedLoop) / 10) * 10;
    process.stderr.write(`  equal rate: ${equalRate} calls/s to each proxy (80% of canary-mesh's closed loop)\n`);
    for (let i = 0; i < slices; i++) {
      await oursLoad.atRate(durationS / slices, equalRate);
      await floorLoad.atRate(durationS / slices, equalRate);
    }
    const ours = oursLoad.row();
    const floor = floorLoad.row();
    const summary = {
      equalRate,
      throughputVsFloor: +(ours.callsPerSecond / floor.callsPerSecond).toFixed(2),
      cpuPerCallVsFloor: +(ours.cpuUsPerCallAtEqualRate! / floor.cpuUsPerCallAtEqualRate!).toFixed(2),
      cpuPerCallVsFloorClosedLoop: +(ours.cpuUsPerCall! / floor.cpuUsPerCall!).toFixed(2),
      throughputVsDirect: +(ours.callsPerSecond / direct.callsPerSecond).toFixed(2),
    };
    process.stderr.write(
      `  canary-mesh vs the floor: ${summary.throughputVsFloor}× the calls/s; CPU per call ${summary.cpuPerCallVsFloor}× at the equal rate (target ≤ 1.2×), ${summary.cpuPerCallVsFloorClosedLoop}× closed-loop\n`,
    );
    return { rows: [direct, ours, floor], summary };
  } finally {
    await Promise.all([v1.stop(), v2.stop(), proxy.stop(), minimal.stop()]);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const durationS = Math.round(parseDuration(process.env.BENCH_DURATION ?? '10s') / 1000);
  grpcBench(durationS)
    .then(async (r) => {
      const file = await writeReport('grpc', r);
      process.stderr.write(`written to ${file}\n`);
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}

// `npm run bench:streams` (and a section of `npm run bench`): LLM streams side by side, in one
// run — the reference OpenAI-compatible server direct, through canary-mesh and through the
// minimal undici proxy. 200 concurrent streaming clients for BENCH_DURATION; reported: time to
// first token p50/p99 per path, streams/s, and CPU per streamed chunk in the proxy's process
// relative to the minimal proxy's; then one stream at a time, the first token's added latency.

import { execSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { parseDuration } from '../common/duration.js';
import { spawnModelServer, spawnProxy } from '../common/processes.js';
import { exactQuantile } from '../proxy/contract/histogram.js';

import { writeReport } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLOCK_TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const cpuMicros = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) / CLOCK_TICKS) * 1e6;
};
const TOKENS = 50;
/** Events per stream the server sends: a role-only chunk, the tokens, a finish_reason chunk, [DONE]. */
const EVENTS = TOKENS + 3;
const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }], stream: true });

export interface StreamRow {
  path: string;
  streams: number;
  streamsPerS: number;
  /** Reads the client saw (TCP coalesces events differently per path: CPU is counted per event). */
  chunks: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  cpuUsPerChunk?: number;
}

/** `concurrency` clients streaming chat completions from `url` for `durationMs`: TTFT per stream, chunks counted. */
async function streamLoad(url: string, concurrency: number, durationMs: number) {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: concurrency });
  const ttft: number[] = [];
  let chunks = 0,
    streams = 0,
    errors = 0;
  const until = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          const r = await pool.request({
            path: u.pathname,
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json' },
          });
          let first = false;
          for await (const c of r.body) {
            chunks++;
            if (
              !first &&
              (c as Buffer).includes('"content":"', 0, 'latin1') &&
              !(c as Buffer).includes('"content":""')
            ) {
              first = true;
              ttft.push(performance.now() - t0);
            }
          }
          streams++;
        } catch {
          errors++;
        }
      }
    }),
  );
  await pool.close();
  return { ttft, chunks, streams, errors };
}

/** A reference proxy of bench/ in its own process (prints a ready line with its port). */
async function startMinimal(baseline: string) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, 'minimal-proxy.ts'), baseline, baseline, '20'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
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
  throw new Error('minimal-proxy.ts did not start');
}

export async function streamBench(durationS: number, concurrency = 200) {
  const llm = await spawnModelServer(
    'llm',
    ['--version', 'l1', '--ttft', '20ms', '--tpot', '5ms', '--tokens', String(TOKENS)],
    {
      LOG_LEVEL: 'warn',
    },
  );
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-bench-streams-'));
  const routes = path.join(dir, 'routes.json');
  // Baseline and canary are the same server: the split, the stream meter and the stats all run.
  await writeFile(
    routes,
    JSON.stringify({
      version: 1,
      deployments: {
        chat: {
          baseline: { version: 'l1', url: llm.ready.url },
          canary: { version: 'l2', url: llm.ready.url, weight: 20 },
        },
      },
    }),
  );
  const proxy = await spawnProxy({ CANARY_ROUTES_FILE: routes, LOG_LEVEL: 'warn' });
  const minimal = await startMinimal(llm.ready.url);
  const paths = [
    { path: 'direct (LLM server)', url: `${llm.ready.url}/v1/chat/completions`, pid: llm.child.pid! },
    {
      path: 'canary-mesh proxy, 20% canary',
      url: `http://127.0.0.1:${proxy.ready.port}/chat/v1/chat/completions`,
      pid: proxy.child.pid!,
    },
    { path: 'minimal undici Pool.stream proxy', url: `${minimal.url}/chat/v1/chat/completions`, pid: minimal.pid },
  ];
  try {
    for (const p of paths) await streamLoad(p.url, 20, 1500); // warm-up
    const rows: StreamRow[] = [];
    process.stderr.write(
      `streams: ${concurrency} concurrent streams of ${TOKENS} tokens (first after 20 ms, then 5 ms each), ${durationS}s per path:\n`,
    );
    for (const p of paths) {
      const before = cpuMicros(p.pid);
      const r = await streamLoad(p.url, concurrency, durationS * 1000);
      const used = cpuMicros(p.pid) - before;
      const row: StreamRow = {
        path: p.path,
        streams: r.streams,
        streamsPerS: +(r.streams / durationS).toFixed(1),
        chunks: r.chunks,
        ttftP50Ms: +(exactQuantile(r.ttft, 0.5) ?? 0).toFixed(3),
        ttftP99Ms: +(exactQuantile(r.ttft, 0.99) ?? 0).toFixed(3),
        cpuUsPerChunk: p.pid === llm.child.pid ? undefined : +(used / Math.max(1, r.streams * EVENTS)).toFixed(2),
      };
      rows.push(row);
      process.stderr.write(
        `  ${row.path.padEnd(34)} ${String(row.streamsPerS).padStart(7)} streams/s  TTFT p50 ${row.ttftP50Ms} ms  p99 ${row.ttftP99Ms} ms${row.cpuUsPerChunk !== undefined ? `  ${row.cpuUsPerChunk} µs CPU per chunk` : ''}${r.errors ? `  errors ${r.errors}` : ''}\n`,
      );
    }
    // One stream at a time: what the proxy adds to the first token when nothing else runs.
    const single: Record<string, { p50: number; p99: number }> = {};
    for (const p of paths) {
      const r = await streamLoad(p.url, 1, Math.min(5000, durationS * 500));
      single[p.path] = {
        p50: +(exactQuantile(r.ttft, 0.5) ?? 0).toFixed(3),
        p99: +(exactQuantile(r.ttft, 0.99) ?? 0).toFixed(3),
      };
    }
    const [direct, ours, floor] = rows;
    const summary = {
      addedTtftMs: {
        concurrent: {
          p50: +(ours.ttftP50Ms - direct.ttftP50Ms).toFixed(3),
          p99: +(ours.ttftP99Ms - direct.ttftP99Ms).toFixed(3),
        },
        minimalProxyConcurrent: {
          p50: +(floor.ttftP50Ms - direct.ttftP50Ms).toFixed(3),
          p99: +(floor.ttftP99Ms - direct.ttftP99Ms).toFixed(3),
        },
        oneStreamP50: +(single[ours.path].p50 - single[direct.path].p50).toFixed(3),
        minimalProxyOneStreamP50: +(single[floor.path].p50 - single[direct.path].p50).toFixed(3),
        targetOneStreamP50: 1,
      },
      cpuPerChunkVsMinimalProxy: +((ours.cpuUsPerChunk ?? 0) / (floor.cpuUsPerChunk ?? 1)).toFixed(3),
      targetCpuPerChunkVsMinimalProxy: 1.2,
      throughputVsMinimalProxy: +(ours.streamsPerS / floor.streamsPerS).toFixed(3),
    };
    return { rows, single, summary };
  } finally {
    await Promise.all([llm.stop(), proxy.stop(), minimal.stop()]);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const durationS = Math.round(parseDuration(process.env.BENCH_DURATION ?? '10s') / 1000);
  streamBench(durationS, Number(process.env.BENCH_STREAMS ?? 200))
    .then(async (r) => {
      const file = await writeReport('streams', r);
      process.stdout.write(`${JSON.stringify(r.summary, null, 2)}\nwritten to ${file}\n`);
    })
    .catch((err) => {
      process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
      process.exit(1);
    });
}

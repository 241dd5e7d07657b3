// `canary up`'s start-up, side by side: the command as users run it (the control plane on a
// thread of its own) and the same stack composed on one thread (control-plane/main.ts's
// startStack), each on a fresh data dir and then on the existing one, median of `runs`.
// Measured from spawning the process to its `{"ready":true}` line: what a user waits before
// typing the next command.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CANARY_BIN } from '../common/processes.js';

const ONE_THREAD = fileURLToPath(new URL('./up-one-thread.ts', import.meta.url));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Spawns, waits for the ready line, stops with SIGTERM; resolves with the ms until ready. */
async function timeToReady(args: string[], dataDir: string): Promise<number> {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      CANARY_DATA_DIR: dataDir,
      CANARY_API_PORT: '0',
      CANARY_PROXY_PORT: '0',
      CANARY_ADMIN_PORT: '0',
      CANARY_XDS_PORT: 'off',
      CANARY_PROXY_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      REDIS_URL: '',
      DATABASE_URL: '',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    for await (const line of createInterface({ input: child.stdout! })) {
      if (line.startsWith('{"ready":true')) return performance.now() - t0;
    }
    throw new Error(`${args.join(' ')} exited before it was ready`);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

export interface StartupRow {
  stack: string;
  freshMs: number;
  existingMs: number;
}

export async function startupBench(runs = 3): Promise<StartupRow[]> {
  const stacks: [string, string[]][] = [
    ['canary up (control plane on its own thread)', [CANARY_BIN, 'up', '--json']],
    ['the same stack on one thread', ['--import', 'tsx', ONE_THREAD]],
  ];
  const rows: StartupRow[] = [];
  for (const [stack, args] of stacks) {
    const fresh: number[] = [];
    const existing: number[] = [];
    for (let i = 0; i < runs; i++) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-startup-'));
      try {
        fresh.push(await timeToReady(args, dir));
        existing.push(await timeToReady(args, dir));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    const row = { stack, freshMs: Math.round(median(fresh)), existingMs: Math.round(median(existing)) };
    process.stderr.write(
      `  ${stack.padEnd(46)} ready in ${row.freshMs} ms (fresh data dir), ${row.existingMs} ms (existing)\n`,
    );
    rows.push(row);
  }
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${JSON.stringify(await startupBench(Number(process.env.BENCH_RUNS ?? 3)), null, 2)}\n`);
}

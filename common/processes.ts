import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Children still running: killed if this process exits first, so none is left behind. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** The `canary` executable of this checkout. */
export const CANARY_BIN = fileURLToPath(new URL('../bin/canary.js', import.meta.url));

export interface ChildServer<T> {
  child: ChildProcess;
  /** The JSON line that said the process is ready. */
  ready: T;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `canary <args>` as a child process and waits for the first JSON line on stdout
 * that `isReady` accepts (servers print their address there, so port 0 works).
 */
export async function spawnCanary<T = Record<string, unknown>>(
  args: string[],
  opts: {
    env?: Record<string, string | undefined>;
    isReady: (msg: Record<string, unknown>) => boolean;
    timeoutMs?: number;
    stderr?: 'inherit' | 'ignore';
  },
): Promise<ChildServer<T>> {
  const child = spawn(process.execPath, [CANARY_BIN, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', opts.stderr ?? 'inherit'],
  });
  live.add(child);
  const exited = once(child, 'exit').finally(() => live.delete(child));
  const stop = async (graceMs = 5000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const lines = createInterface({ input: child.stdout! });
  const timeout = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  try {
    for await (const line of lines) {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if (opts.isReady(msg)) {
        clearTimeout(timeout);
        child.stdout!.resume(); // keep draining so the child never blocks on a full pipe
        lines.removeAllListeners('line');
        lines.on('line', () => {});
        return { child, ready: msg as T, stop };
      }
    }
  } finally {
    clearTimeout(timeout);
  }
  throw new Error(`canary ${args.join(' ')} exited (code ${child.exitCode}) before it was ready`);
}

/** `canary model-server` on a free port; resolves with its URL once it serves. */
export function spawnModelServer(model: string, extra: string[] = [], env: Record<string, string> = {}) {
  return spawnCanary<{ url: string; version: string; accuracy: number }>(
    ['model-server', '--model', model, '--port', '0', ...extra],
    { env, isReady: (m) => m.ready === true },
  );
}

/** `canary proxy`; resolves once both ports listen. */
export function spawnProxy(env: Record<string, string | undefined>) {
  return spawnCanary<{ port: number; adminPort: number }>(['proxy'], {
    env: { CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1', ...env },
    isReady: (m) => m.ready === true && m.component === 'proxy',
  });
}

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../common/logger.js';

const WORKER = new URL('./embedded-postgres-worker.mjs', import.meta.url);
/** PGlite compiles its WebAssembly and opens (or creates) the data dir: seconds, more on a busy machine. */
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;

export class EmbeddedPostgresError extends Error {
  readonly code = 'EMBEDDED_DB_FAILED';
}

/**
 * The embedded PostgreSQL in a worker thread of its own (embedded-postgres-worker.mjs), so no
 * SQL runs on the event loop that proxies users' requests: the main thread talks to it over a
 * Unix socket with `pg`, as to any PostgreSQL. A worker that dies is logged as the error it is
 * and started again on the same data dir and socket (with a growing pause if it keeps dying);
 * meanwhile queries fail at once with a connection error, as in any database outage, and none
 * waits on a dead thread.
 */
export class EmbeddedPostgres {
  /** Restarts after a crash since start (shown in logs). */
  restarts = 0;
  private worker: Worker | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly dataDir: string,
    /** The directory holding the socket: `pg` connects to `<dir>/.s.PGSQL.5432`. */
    readonly socketDir: string,
    private readonly logger?: Logger,
  ) {}

  static async start(dataDir: string, logger?: Logger): Promise<EmbeddedPostgres> {
    // A short, private path: Unix socket paths are limited to ~100 bytes, data dirs are not.
    const socketDir = await mkdtemp(path.join(os.tmpdir(), 'canary-pg-'));
    const pg = new EmbeddedPostgres(path.resolve(dataDir), socketDir, logger);
    try {
      await pg.spawn();
    } catch (err) {
      await rm(socketDir, { recursive: true, force: true });
      throw err;
    }
    return pg;
  }

  /** Connection settings for `pg`. */
  get connection(): { host: string; port: number; user: string; database: string } {
    return { host: this.socketDir, port: 5432, user: 'postgres', database: 'postgres' };
  }

  get url(): string {
    return `postgres://postgres@/postgres?host=${encodeURIComponent(this.socketDir)}`;
  }

  /** The worker thread (fault-injection tests end it as a crash would). */
  get thread(): Worker | null {
    return this.worker;
  }

  private async spawn(): Promise<void> {
    await rm(path.join(this.socketDir, '.s.PGSQL.5432'), { force: true }); // left by a crashed worker
    const worker = new Worker(WORKER, {
      workerData: { dataDir: this.dataDir, socketPath: path.join(this.socketDir, '.s.PGSQL.5432') },
    });
    this.worker = worker;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new EmbeddedPostgresError(`embedded PostgreSQL did not start within ${START_TIMEOUT_MS / 1000} s`));
      }, START_TIMEOUT_MS);
      const failed = (why: string) => {
        clearTimeout(timer);
        reject(new EmbeddedPostgresError(`embedded PostgreSQL (PGlite on ${this.dataDir}) failed to start: ${why}`));
      };
      worker.on('message', (m: { type: string; message?: string }) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (m.type === 'failed') failed(m.message ?? 'unknown error');
      });
      worker.once('error', (err) => failed(err.message));
      worker.once('exit', (code) => failed(`its thread exited (code ${code})`));
    });
    // Started: from now on an exit that was not asked for is a crash.
    worker.removeAllListeners('error').removeAllListeners('exit');
    let why = 'no error';
    worker.on('error', (err) => {
      why = err.stack ?? err.message;
    });
    worker.once('exit', (code) => {
      if (this.stopping || this.worker !== worker) return;
      this.worker = null;
      this.restarts++;
      const pause = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.restarts - 1, 7));
      this.logger?.error(
        { code, err: why, restarts: this.restarts, retryInMs: pause },
        'embedded PostgreSQL crashed; queries fail until it is restarted',
      );
      this.restartTimer = setTimeout(() => void this.restart(), pause);
    });
  }

  private async restart(): Promise<void> {
    this.restartTimer = null;
    if (this.stopping) return;
    try {
      await this.spawn();
      this.logger?.warn({ restarts: this.restarts }, 'embedded PostgreSQL restarted');
    } catch (err) {
      this.restarts++;
      this.logger?.error({ err: (err as Error).message }, 'embedded PostgreSQL failed to restart; trying again');
      this.restartTimer = setTimeout(() => void this.restart(), MAX_BACKOFF_MS);
    }
  }

  /** Stops the database cleanly (its files closed), or ends its thread when it does not stop in time. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const worker = this.worker;
    this.worker = null;
    if (worker) {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const stopped = new Promise<void>((resolve) => worker.on('message', (m) => m.type === 'stopped' && resolve()));
      worker.postMessage({ type: 'stop' });
      const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), STOP_TIMEOUT_MS).unref());
      if ((await Promise.race([stopped, exited, timer])) === 'late') {
        this.logger?.warn('embedded PostgreSQL did not stop in time; its thread is ended');
      }
      await worker.terminate();
      await exited;
    }
    await rm(this.socketDir, { recursive: true, force: true });
  }
}

import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from '../../common/logger.js';
import { EmbeddedPostgres } from './embedded-postgres.js';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Database {
  pool: pg.Pool;
  /** The connection string in use (for the embedded server: its local address). */
  url: string;
  embedded: boolean;
  /** The embedded database's thread (embedded only). */
  server?: EmbeddedPostgres;
  close(): Promise<void>;
}

/**
 * Applies numbered migrations (`NNN_name.sql`) not yet recorded in schema_migrations, each
 * in its own transaction. An advisory lock keeps two starting replicas from racing.
 */
export async function migrate(pool: pg.Pool, logger?: Logger): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock(727274)');
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version),
    );
    const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
    const applied: number[] = [];
    for (const file of files) {
      const version = Number(file.slice(0, 3));
      if (done.has(version)) continue;
      const sql = await readFile(path.join(MIGRATIONS_DIR, file), 'utf8');
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [version, file]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${file} failed: ${(err as Error).message}`);
      }
      applied.push(version);
      logger?.info({ migration: file }, 'migration applied');
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock(727274)').catch(() => {});
    client.release();
  }
}

/** The configured PostgreSQL (`DATABASE_URL`), or else the embedded one in the data dir. */
export function openDatabase(
  config: { databaseUrl: string | null; dataDir: string },
  logger?: Logger,
): Promise<Database> {
  return config.databaseUrl
    ? connectDatabase(config.databaseUrl, logger)
    : startEmbeddedDatabase(config.dataDir, logger);
}

/** A pool on a real PostgreSQL server. */
export async function connectDatabase(url: string, logger?: Logger, max = 10): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30_000 });
  pool.on('error', (err) => logger?.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
  await migrate(pool, logger);
  return { pool, url, embedded: false, close: () => pool.end() };
}

/**
 * The embedded default: PGlite (PostgreSQL compiled to WebAssembly) keeping its files in
 * `dataDir`, in a worker thread of its own (embedded-postgres.ts) so that no SQL runs on the
 * proxy's event loop, served on a Unix socket by pglite-socket so the same `pg` code path runs.
 * PGlite is one session; the pool therefore holds one connection, which also serialises
 * transactions.
 */
export async function startEmbeddedDatabase(dataDir: string, logger?: Logger): Promise<Database> {
  await mkdir(dataDir, { recursive: true });
  const unlock = await lockDataDir(dataDir);
  let server: EmbeddedPostgres;
  try {
    server = await EmbeddedPostgres.start(dataDir, logger);
  } catch (err) {
    await unlock();
    throw err;
  }
  logger?.info({ dataDir, socket: server.socketDir }, 'embedded PostgreSQL (PGlite) started in its own thread');
  const pool = new pg.Pool({ ...server.connection, max: 1, connectionTimeoutMillis: 10_000 });
  pool.on('error', (err) => logger?.warn({ err: err.message }, 'embedded PostgreSQL connection failed'));
  try {
    await migrate(pool, logger);
  } catch (err) {
    await pool.end();
    await server.stop();
    await unlock();
    throw err;
  }
  return {
    pool,
    url: server.url,
    embedded: true,
    server,
    close: async () => {
      await pool.end();
      await server.stop();
      await unlock();
    },
  };
}

export class DataDirLockedError extends Error {
  readonly code = 'DATA_DIR_LOCKED';
}

/**
 * The embedded database has one writer: a second process on the same CANARY_DATA_DIR would
 * split the state. An exclusive lock file names the holder; a holder that crashed (its pid is
 * gone) does not keep it locked.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, 'canary.lock');
  const me = JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, me, { flag: 'wx' });
      return async () => {
        await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder: { pid?: number; host?: string; startedAt?: string } = {};
      try {
        holder = JSON.parse(await readFile(file, 'utf8'));
      } catch {
        /* unreadable: treat as stale */
      }
      const alive = holder.pid !== undefined && holder.host === hostname() && pidAlive(holder.pid);
      if (alive || (holder.host !== undefined && holder.host !== hostname())) {
        throw new DataDirLockedError(
          `${path.resolve(dataDir)} is in use by another canary-mesh process (pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}); stop it, or give this one its own CANARY_DATA_DIR`,
        );
      }
      await rm(file, { force: true }); // the holder is gone: a stale lock
    }
  }
  throw new DataDirLockedError(`could not lock ${path.resolve(dataDir)}`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

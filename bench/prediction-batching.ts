// How the prediction log's batches are written, side by side: today's one statement per batch
// through unnest(arrays), against a multi-row VALUES list and against one INSERT per row in a
// transaction, on the embedded PostgreSQL (PGlite in its own thread) and on a real PostgreSQL
// (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test). Reports rows per second and the CPU
// each row costs the calling thread (the proxy's, in `canary up`).
// Usage: npm run bench:predictions   (BENCH_ROWS=40000, batches of 2,000 as the log writes them)
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { connectDatabase, type Database, startEmbeddedDatabase } from '../control-plane/state/db.js';
import { PgPredictionSink, type PredictionRecord } from '../proxy/telemetry/prediction-log.js';
import { writeReport } from './report.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 40_000);
const BATCH = 2_000;
const COLUMNS = 'request_id, deployment, version, role, input_sha256, outcome, latency_ms, at';
const CLOCK_TICKS = 100;

/** CPU µs of this process's main thread (the embedded database's thread is not counted). */
function mainThreadMicros(): number {
  const fields = readFileSync(`/proc/${process.pid}/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

function records(n: number): PredictionRecord[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    requestId: randomUUID(),
    deployment: 'iris',
    version: i % 5 === 0 ? 'v2' : 'v1',
    role: i % 5 === 0 ? 'canary' : 'baseline',
    inputSha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    outcome: 'success',
    latencyMs: 1.5 + (i % 7),
    at: now + i,
  }));
}

const row = (r: PredictionRecord) => [
  r.requestId,
  r.deployment,
  r.version,
  r.role,
  r.inputSha256,
  r.outcome,
  r.latencyMs,
  new Date(r.at),
];

/** The ways a batch can be written. */
const METHODS: Record<string, (pool: pg.Pool, batch: PredictionRecord[]) => Promise<void>> = {
  'unnest (today)': (pool, batch) => new PgPredictionSink(pool).write(batch, randomUUID()),
  'multi-row VALUES': async (pool, batch) => {
    // PostgreSQL allows 65,535 parameters per statement: 8 columns × 2,000 rows fit.
    const values = batch.map((_, i) => `(${Array.from({ length: 8 }, (_, c) => `$${i * 8 + c + 1}`).join(', ')})`);
    await pool.query(`INSERT INTO predictions (${COLUMNS}) VALUES ${values.join(', ')}`, batch.flatMap(row));
  },
  'one INSERT per row, one transaction': async (pool, batch) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      for (const r of batch)
        await c.query(`INSERT INTO predictions (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, row(r));
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  },
};

async function measure(db: Database, where: string) {
  const rows = [];
  for (const [method, write] of Object.entries(METHODS)) {
    const all = records(ROWS);
    await write(db.pool, records(BATCH)); // warm-up
    const cpu0 = mainThreadMicros();
    const t0 = performance.now();
    for (let i = 0; i < all.length; i += BATCH) await write(db.pool, all.slice(i, i + BATCH));
    const seconds = (performance.now() - t0) / 1000;
    const cpuUsPerRow = (mainThreadMicros() - cpu0) / ROWS;
    const r = {
      database: where,
      method,
      rowsPerSecond: Math.round(ROWS / seconds),
      mainThreadCpuUsPerRow: +cpuUsPerRow.toFixed(2),
    };
    process.stderr.write(
      `  ${where.padEnd(22)} ${method.padEnd(36)} ${String(r.rowsPerSecond).padStart(7)} rows/s  ${r.mainThreadCpuUsPerRow} µs CPU per row on the calling thread\n`,
    );
    rows.push(r);
  }
  return rows;
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-bench-pred-'));
const results = [];
const embedded = await startEmbeddedDatabase(dir);
try {
  results.push(...(await measure(embedded, 'embedded (PGlite)')));
} finally {
  await embedded.close();
  await rm(dir, { recursive: true, force: true });
}
// A schema of its own on the real server, dropped after.
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_${randomUUID().slice(0, 8)}`;
const admin = new pg.Client({ connectionString: url });
await admin.connect();
await admin.query(`CREATE SCHEMA ${schema}`);
try {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  const real = await connectDatabase(u.toString());
  try {
    results.push(...(await measure(real, 'PostgreSQL')));
  } finally {
    await real.close();
  }
} finally {
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
}
process.stderr.write(`written to ${await writeReport('predictions', { rows: ROWS, batch: BATCH, results })}\n`);

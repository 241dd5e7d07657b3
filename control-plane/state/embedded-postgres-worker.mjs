// The embedded PostgreSQL's own thread: PGlite (PostgreSQL compiled to WebAssembly) on the
// data dir, served over a local socket by pglite-socket. SQL runs here, never on the thread
// that proxies users' requests; the main thread reaches it with `pg` like any PostgreSQL.
// Plain JavaScript: a worker does not inherit the TypeScript loader of the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const { dataDir, socketPath } = workerData;
let db;
let server;
try {
  db = await PGlite.create(dataDir);
  server = new PGLiteSocketServer({ db, path: socketPath });
  await server.start();
  parentPort.postMessage({ type: 'ready' });
} catch (err) {
  parentPort.postMessage({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

parentPort.on('message', async (m) => {
  if (m?.type !== 'stop') return;
  try {
    await server.stop();
    await db.close();
  } finally {
    parentPort.postMessage({ type: 'stopped' });
    parentPort.close();
  }
});

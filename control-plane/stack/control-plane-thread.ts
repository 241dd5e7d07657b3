// The control plane's thread in `canary up` (threaded.ts starts it): the REST API, the
// dashboard, the analysis loop, the prober and the embedded database's client all run here,
// so none of their JavaScript or SQL shares the event loop that proxies users' requests.
// The proxy on the main thread reaches this thread's stats store and database by calls
// (rpc.ts); this thread programs the proxy's route table by a call that returns once applied.
import { parentPort, workerData } from 'node:worker_threads';
import type { ControlPlaneConfig } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import type { RouteTable } from '../../proxy/contract/route-table.js';
import type { DisagreementExample, StatsCell } from '../../proxy/contract/stats.js';
import type { Trip } from '../../proxy/contract/trip.js';
import type { PredictionRecord } from '../../proxy/main.js';
import type { RunningControlPlane } from '../main.js';
import { openDatabase } from '../state/db.js';
import { Caller, serveCalls } from './rpc.js';
import { niceThisThread } from './thread-priority.js';

export interface ControlPlaneThreadData {
  config: ControlPlaneConfig;
  logLevel: string | undefined;
}

/** What the main thread hears once the control plane serves (or why it could not). */
export type ThreadStatus =
  | { type: 'ready'; url: string; port: number; xdsPort: number | null }
  | { type: 'failed'; message: string; code?: string };

/** The control plane thread's nice value: a weight of about a tenth of the proxy's when both want a core. */
const CONTROL_PLANE_NICE = 10;

const port = parentPort!;
const { config, logLevel } = workerData as ControlPlaneThreadData;
const logger = createLogger('canary', logLevel);
const toMain = new Caller(port);

// Users' requests first: this thread yields the cores to the proxy's, and so does the embedded
// database's, which it starts (a thread inherits its creator's priority). The prediction log
// does not wait on it: its rows queue in the proxy (bounded, counted when full) while the
// cores are busy and are written when they are not.
if (!niceThisThread(CONTROL_PLANE_NICE)) logger.info('control plane thread runs at normal priority');

// The database starts first (PGlite compiles and opens its files in a thread of its own) while
// the rest of the control plane loads: start-up is the longer of the two, not their sum.
const opening = openDatabase(config, logger);
opening.catch(() => {}); // awaited below, after the imports: not an unhandled rejection meanwhile
const [{ startControlPlane }, { MemoryStatsStore }, { PgPredictionSink }] = await Promise.all([
  import('../main.js'),
  import('../../proxy/contract/memory-stats-store.js'),
  import('../../proxy/main.js'),
]);

// Without Redis the proxy's stats live here, beside the analysis that reads them; the proxy
// sends its cells once per flush. With Redis both sides use Redis as separate processes do.
const stats = config.redisUrl ? null : new MemoryStatsStore();
let controlPlane: RunningControlPlane;
try {
  const db = await opening;
  controlPlane = await startControlPlane(
    config,
    stats
      ? {
          db,
          logger,
          stats,
          publisher: { publish: (table: RouteTable) => toMain.call('applyRoutes', table) },
        }
      : { db, logger },
  );
} catch (err) {
  const e = err as Error & { code?: string };
  port.postMessage({ type: 'failed', message: e.message, code: e.code } satisfies ThreadStatus);
  process.exit(1);
}

const predictions = new PgPredictionSink(controlPlane.db.pool);
const noStats = () => {
  throw new Error('stats go through Redis in this stack');
};
serveCalls(port, {
  writeStats: (cells: StatsCell[], flushId?: string) => (stats ? stats.write(cells, flushId) : noStats()),
  reportTrip: (trip: Trip) => (stats ? stats.reportTrip(trip) : noStats()),
  addExamples: (deployment: string, version: string, examples: DisagreementExample[]) =>
    stats ? stats.addExamples(deployment, version, examples) : noStats(),
  writePredictions: (records: PredictionRecord[], batchId: string) => predictions.write(records, batchId),
  close: () => controlPlane.close(),
});
port.postMessage({
  type: 'ready',
  url: controlPlane.url,
  port: controlPlane.port,
  xdsPort: controlPlane.xds?.port ?? null,
} satisfies ThreadStatus);

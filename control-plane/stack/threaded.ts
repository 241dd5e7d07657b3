import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { ControlPlaneConfig, ProxyConfig } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import type { StatsCell, StatsStore } from '../../proxy/contract/stats.js';
import type { PredictionRecord, PredictionSink, RunningProxy } from '../../proxy/main.js';
import type { ControlPlaneThreadData, ThreadStatus } from './control-plane-thread.js';
import { Caller, serveCalls } from './rpc.js';

const THREAD = new URL('./control-plane-thread.mjs', import.meta.url);

export class ControlPlaneThreadError extends Error {
  readonly code = 'CONTROL_PLANE_THREAD_FAILED';
}

/** The proxy's view of the stats store that lives on the control plane's thread: it only writes. */
class ThreadStatsStore implements StatsStore {
  constructor(private readonly cp: Caller) {}
  write(cells: StatsCell[], flushId?: string) {
    return this.cp.call('writeStats', cells, flushId);
  }
  reportTrip(trip: Parameters<StatsStore['reportTrip']>[0]) {
    return this.cp.call('reportTrip', trip);
  }
  addExamples(...args: Parameters<StatsStore['addExamples']>) {
    return this.cp.call('addExamples', ...args);
  }
  read(): never {
    throw new Error('stats are read on the control plane thread');
  }
  takeTrips = this.read;
  examples = this.read;
}

/** The prediction log's batches go to the control plane's thread, which holds the database connection. */
class ThreadPredictionSink implements PredictionSink {
  constructor(private readonly cp: Caller) {}
  write(records: PredictionRecord[], batchId: string) {
    return this.cp.call('writePredictions', records, batchId);
  }
}

export interface ThreadedStack {
  controlPlane: { url: string; port: number; xds: { port: number } | null };
  proxy: RunningProxy;
  /** Settles with the error when the control plane's thread ends on its own (a crash). */
  crashed: Promise<Error>;
  close(): Promise<void>;
}

/**
 * `canary up`: the proxy on this thread, the control plane (API, dashboard, analysis, the
 * database's client) on a thread of its own, niced, so a busy dashboard or a long query never
 * runs on users' event loop and yields them the cores; the prediction log's SQL encoding runs
 * there too. Without Redis the route table and the stats cross between the threads by calls
 * (rpc.ts); with Redis both sides use it, as separate processes do.
 */
export async function startThreadedStack(
  cpConfig: Readonly<ControlPlaneConfig>,
  proxyConfig: Readonly<ProxyConfig>,
  opts: { logger: Logger; logLevel?: string },
): Promise<ThreadedStack> {
  const { logger } = opts;
  // libuv's thread pool (DNS lookups of model servers, files) starts on first use and its
  // threads inherit the priority of the thread that starts it: start it here, at the proxy's
  // priority, before the control plane's thread lowers its own.
  await stat('.');
  const worker = new Worker(THREAD, {
    workerData: { config: cpConfig, logLevel: opts.logLevel } satisfies ControlPlaneThreadData,
  });
  // The data plane's modules load while the control plane's thread starts. Every listener on
  // the thread is in place before the first await, so none of its messages is missed.
  const loading = import('../../proxy/main.js');
  const routes = loading.then((m) => new m.StaticRouteSource());
  const cp = new Caller(worker);
  serveCalls(worker, { applyRoutes: async (table: unknown) => (await routes).set(table) });

  let stopping = false;
  let onCrash: (err: Error) => void = () => {};
  const crashed = new Promise<Error>((resolve) => {
    onCrash = resolve;
  });
  const started = new Promise<Extract<ThreadStatus, { type: 'ready' }>>((resolve, reject) => {
    worker.on('message', (m: ThreadStatus) => {
      if (m?.type === 'ready') resolve(m);
      if (m?.type === 'failed') {
        stopping = true; // it could not start: that error is the answer, not a crash to report
        reject(Object.assign(new Error(m.message), m.code ? { code: m.code } : {}));
      }
    });
    worker.once('error', (err) => {
      logger.error({ err: err.message, stack: err.stack }, 'control plane thread failed');
      reject(err);
    });
    worker.once('exit', (code) => {
      const err = new ControlPlaneThreadError(`the control plane thread ended (exit code ${code})`);
      cp.fail(err);
      reject(err);
      if (!stopping) {
        logger.error({ code }, 'control plane thread ended unexpectedly');
        onCrash(err);
      }
    });
  });
  const [ready, { proxyFromConfig, startProxy }, source] = await Promise.all([started, loading, routes]);

  const predictionSink = proxyConfig.predictionQueue > 0 ? new ThreadPredictionSink(cp) : undefined;
  let proxy: RunningProxy;
  try {
    proxy = cpConfig.redisUrl
      ? await proxyFromConfig(
          { ...proxyConfig, redisUrl: cpConfig.redisUrl, redisPrefix: cpConfig.redisPrefix },
          logger,
          { predictionSink },
        )
      : await startProxy({
          config: proxyConfig,
          routeSource: source,
          statsStore: new ThreadStatsStore(cp),
          logger,
          predictionSink,
          predictionLog: { maxQueue: proxyConfig.predictionQueue },
        });
  } catch (err) {
    stopping = true;
    await cp.call('close').catch(() => {});
    await worker.terminate();
    throw err;
  }

  let closing: Promise<void> | null = null;
  return {
    controlPlane: { url: ready.url, port: ready.port, xds: ready.xdsPort === null ? null : { port: ready.xdsPort } },
    proxy,
    crashed,
    close() {
      closing ??= (async () => {
        stopping = true;
        await proxy.close(); // drains requests, then flushes stats and the prediction log through the thread
        await cp.call('close').catch((err: Error) => logger.warn({ err: err.message }, 'control plane close failed'));
        await worker.terminate();
      })();
      return closing;
    },
  };
}

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { createAdminServer } from './admin.js';
import { createRequestHandler } from './handler.js';
import { EMPTY_TABLE, type RouteTable } from './split/route-table.js';
import type { RouteSource } from './split/sources/route-source.js';
import { StatsFlusher } from './telemetry/flusher.js';
import { ProxyRecorder } from './telemetry/recorder.js';
import { StatsAccumulator, type StatsStore } from './telemetry/stats.js';
import { UpstreamPools } from './upstream/pools.js';
import { DEFAULT_PREDICTION_LOG, PredictionLog, type PredictionLogOptions, type PredictionSink } from './telemetry/prediction-log.js';

export interface ProxyDeps {
  config: Readonly<ProxyConfig>;
  routeSource: RouteSource;
  statsStore: StatsStore;
  logger: Logger;
  recorder?: ProxyRecorder;
  /** Where the prediction log goes (PostgreSQL); no log without one. */
  predictionSink?: PredictionSink;
  predictionLog?: Partial<PredictionLogOptions>;
}

export interface RunningProxy {
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  table(): RouteTable;
  /** Epoch ms when the current route table was applied (null before the first). */
  tableAppliedAt(): number | null;
  recorder: ProxyRecorder;
  /** Writes accumulated stats now (tests; shutdown does it too). */
  flushStats(): Promise<void>;
  predictions: PredictionLog | null;
  /** Stop accepting, finish in-flight requests (up to the grace period), flush stats. */
  close(): Promise<void>;
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Composes the data plane from its parts and starts both ports. */
export async function startProxy(deps: ProxyDeps): Promise<RunningProxy> {
  const { config, routeSource, statsStore, logger } = deps;
  const recorder = deps.recorder ?? new ProxyRecorder(undefined, { defaultMetrics: true });
  const pools = new UpstreamPools({ connections: config.upstreamConnections, connectTimeoutMs: config.connectTimeoutMs, keepAliveTimeoutMs: 60_000 });
  const stats = new StatsAccumulator();
  const flusher = new StatsFlusher(stats, statsStore, config.statsFlushMs, logger, () => recorder.statsFlushFailures.inc());
  const predictions = deps.predictionSink
    ? new PredictionLog(deps.predictionSink, { ...DEFAULT_PREDICTION_LOG, ...deps.predictionLog }, logger, (n) => recorder.predictionsDropped.inc(n), (n) => recorder.predictionsWritten.inc(n))
    : null;
  if (predictions) recorder.predictionQueue = () => predictions.queued;

  let table: RouteTable = EMPTY_TABLE;
  let appliedAt: number | null = null;
  const applyTable = (next: RouteTable) => {
    table = next;
    appliedAt = Date.now();
    recorder.onTable(next);
    const origins = new Set<string>();
    for (const d of Object.values(next.deployments)) {
      origins.add(d.baseline.url);
      if (d.canary) origins.add(d.canary.url);
    }
    pools.retain(origins);
    logger.info({ routeTableVersion: next.version, deployments: Object.keys(next.deployments).length }, 'route table applied');
  };
  routeSource.onConnectivity = (up) => recorder.setRouteSourceConnected(up);
  await routeSource.start(applyTable);
  recorder.setRouteSourceConnected(routeSource.status().connected);

  const handle = createRequestHandler({ config, table: () => table, pools, recorder, stats, logger, predictions: predictions ?? undefined });
  const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    handle(req, res).catch((err: Error) => {
      // A bug here must never take the proxy down: log, answer 500 if still possible.
      logger.error({ err }, 'request handler failed');
      if (!res.headersSent) { res.writeHead(500, { 'content-type': 'application/json' }); res.end('{"error":{"code":"INTERNAL","message":"proxy error"}}'); } else res.destroy();
    });
  });
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    // Malformed HTTP from a client: answer 400 and close, as node would, but say why.
    if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":{"code":"BAD_REQUEST_TARGET","message":"malformed request: ${err.code ?? 'parse error'}"}}`);
    else socket.destroy();
  });
  const admin = createAdminServer({ recorder, table: () => table, source: routeSource, hasTable: () => appliedAt !== null, appliedAt: () => appliedAt });

  flusher.start();
  predictions?.start();
  const port = await listen(server, config.port, config.host);
  const adminPort = await listen(admin, config.adminPort, config.host);
  const local = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  logger.info({ port, adminPort, mode: config.deployment ? `sidecar:${config.deployment}` : 'gateway' }, 'proxy listening');

  let closing: Promise<void> | null = null;
  return {
    port, adminPort,
    url: `http://${local}:${port}`,
    adminUrl: `http://${local}:${adminPort}`,
    table: () => table,
    tableAppliedAt: () => appliedAt,
    recorder,
    flushStats: () => flusher.flush(),
    predictions,
    close() {
      closing ??= (async () => {
        const drained = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const grace = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownGraceMs).unref());
        await Promise.race([drained, grace]);
        server.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
        admin.closeAllConnections();
        await flusher.stop();
        await predictions?.stop();
        await routeSource.stop();
        await pools.close();
        logger.info('proxy stopped');
      })();
      return closing;
    },
  };
}

import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { AddressPolicy, portOf } from '../common/address-policy.js';
import { type ProxyConfig, portError } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { createAdminServer } from './admin.js';
import { EMPTY_TABLE, type RouteTable, upstreamParts } from './contract/route-table.js';
import type { StatsStore } from './contract/stats.js';
import type { Trip } from './contract/trip.js';
import { createRequestHandler } from './handler.js';
import { GrpcCallRequest, GrpcCallResponse, isPlainGrpcCall } from './protocol/grpc-call.js';
import { acceptBothProtocols } from './protocol/sniff.js';
import { sendGrpcError } from './request/errors.js';
import { OutcomeRecorder } from './request/outcomes.js';
import { resolveTarget } from './request/target.js';
import { ShadowMirror } from './shadow/mirror.js';
import type { RouteSource } from './split/sources/route-source.js';
import { CanaryTripper } from './split/trips.js';
import { StatsAccumulator } from './telemetry/accumulator.js';
import { StatsFlusher } from './telemetry/flusher.js';
import {
  DEFAULT_PREDICTION_LOG,
  PredictionLog,
  type PredictionLogOptions,
  type PredictionSink,
} from './telemetry/prediction-log.js';
import { ProxyRecorder } from './telemetry/recorder.js';
import { createUpgradeHandler } from './upgrade.js';
import { H2Sessions } from './upstream/h2-sessions.js';
import { LatencyTracker } from './upstream/hedge.js';
import { UpstreamPools } from './upstream/pools.js';

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

function listen(server: http.Server, port: number, host: string, setting: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error) => reject(portError(err, port, setting));
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Composes the data plane from its parts and starts both ports. */
export async function startProxy(deps: ProxyDeps): Promise<RunningProxy> {
  const { config, routeSource, statsStore, logger } = deps;
  const recorder = deps.recorder ?? new ProxyRecorder(undefined, { defaultMetrics: true });
  // Model servers are never this proxy's own ports, its Redis or PostgreSQL, or link-local/metadata addresses.
  const policy = new AddressPolicy({
    allow: config.upstreamAllow,
    ownPorts: [config.port, config.adminPort, portOf(config.redisUrl), portOf(config.databaseUrl)].filter(
      (p): p is number => !!p,
    ),
  });
  const pools = new UpstreamPools({
    connections: config.upstreamConnections,
    connectTimeoutMs: config.connectTimeoutMs,
    keepAliveTimeoutMs: 60_000,
    policy,
  });
  const h2 = new H2Sessions({ connectTimeoutMs: config.connectTimeoutMs, policy });
  const stats = new StatsAccumulator();
  const flusher = new StatsFlusher(stats, statsStore, config.statsFlushMs, logger, () =>
    recorder.statsFlushFailures.inc(),
  );
  const predictions = deps.predictionSink
    ? new PredictionLog(
        deps.predictionSink,
        { ...DEFAULT_PREDICTION_LOG, ...deps.predictionLog },
        logger,
        (n) => recorder.predictionsDropped.inc(n),
        (n) => recorder.predictionsWritten.inc(n),
      )
    : null;
  if (predictions) recorder.predictionQueue = () => predictions.queued;

  // Trips are reported to the control plane through the stats store; a failed report is
  // retried every second until it lands (the proxy is tripped locally either way).
  const unreported: Trip[] = [];
  const reportTrips = async () => {
    while (unreported.length) {
      try {
        await statsStore.reportTrip(unreported[0]);
        unreported.shift();
      } catch {
        return;
      }
    }
  };
  const tripRetry = setInterval(() => void reportTrips(), 1000);
  tripRetry.unref();
  const trips = new CanaryTripper(
    (trip) => {
      recorder.canaryTrips.labels(trip.deployment).inc();
      logger.warn(
        {
          deployment: trip.deployment,
          version: trip.version,
          consecutiveFailures: trip.consecutiveFailures,
          outcomes: trip.outcomes,
        },
        'canary tripped: taken off live traffic by this proxy until the control plane publishes a newer route table',
      );
      unreported.push(trip);
      void reportTrips();
    },
    undefined,
    (f) => {
      recorder.sharedFaults.labels(f.deployment).inc();
      logger.warn(
        f,
        'both versions failing: a canary run of failures while the baseline failed too is a shared fault; not tripped',
      );
    },
  );
  const latency = new LatencyTracker();

  let table: RouteTable = EMPTY_TABLE;
  let appliedAt: number | null = null;
  const applyTable = (next: RouteTable) => {
    table = next;
    appliedAt = Date.now();
    trips.onTable(next.version);
    recorder.onTable(next);
    const origins = new Set<string>();
    for (const d of Object.values(next.deployments)) {
      origins.add(upstreamParts(d.baseline.url).origin);
      if (d.canary) origins.add(upstreamParts(d.canary.url).origin);
    }
    pools.retain(origins);
    h2.retain(origins);
    logger.info(
      { routeTableVersion: next.version, deployments: Object.keys(next.deployments).length },
      'route table applied',
    );
  };
  routeSource.onConnectivity = (up) => recorder.setRouteSourceConnected(up);
  await routeSource.start(applyTable);
  recorder.setRouteSourceConnected(routeSource.status().connected);

  const shadow = new ShadowMirror({ pools, h2, stats, recorder });
  const outcomes = new OutcomeRecorder({
    metrics: recorder,
    stats,
    latency,
    trips,
    predictions: predictions ?? undefined,
  });
  const handle = createRequestHandler({
    config,
    table: () => table,
    pools,
    h2,
    metrics: recorder,
    outcomes,
    logger,
    trips,
    latency,
    shadow,
  });
  // Client-side limits that hold under abuse: a slow-header (slowloris) client is cut at the
  // header timeout, a slow body at the request timeout, an idle keep-alive socket at the
  // keep-alive timeout — checked every second, not node's default 30 s.
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    handle(req, res).catch((err: Error) => {
      // A bug here must never take the proxy down: log, answer 500 if still possible.
      logger.error({ err }, 'request handler failed');
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"INTERNAL","message":"proxy error"}}');
      } else res.destroy();
    });
  };
  const onGrpcCall = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]) => {
    const res = new GrpcCallResponse(stream);
    handle(new GrpcCallRequest(stream, headers, rawHeaders), res).catch((err: Error) => {
      logger.error({ err }, 'request handler failed');
      sendGrpcError(res, 'INTERNAL', 'proxy error');
    });
  };
  const server = http.createServer(
    {
      headersTimeout: config.clientHeaderTimeoutMs,
      requestTimeout: config.clientRequestTimeoutMs,
      keepAliveTimeout: config.clientKeepAliveMs,
      connectionsCheckingInterval: 1000,
    },
    onRequest,
  );
  // HTTP/2 with prior knowledge (gRPC, curl --http2-prior-knowledge) on the same port, through
  // the same handler; an idle session is closed after the keep-alive timeout. gRPC calls are
  // served on node's core stream API (the hot path: no compatibility objects per call); every
  // other HTTP/2 request goes on to the compatibility API's own stream listener, which gives it
  // the req/res shape of HTTP/1.1.
  const h2server = http2.createServer({ settings: { enablePush: false } }, onRequest as never);
  const compat = h2server.listeners('stream') as ((...args: unknown[]) => void)[];
  if (compat.length !== 1) throw new Error('expected the HTTP/2 server’s own compatibility listener only');
  h2server.removeAllListeners('stream');
  h2server.on(
    'stream',
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      if (isPlainGrpcCall(headers)) onGrpcCall(stream, headers, rawHeaders);
      else compat[0].call(h2server, stream, headers, flags, rawHeaders);
    },
  );
  h2server.setTimeout(config.clientKeepAliveMs, (session?: http2.Http2Session) => session?.close());
  const h2clients = new Set<http2.ServerHttp2Session>();
  h2server.on('session', (session: http2.ServerHttp2Session) => {
    h2clients.add(session);
    session.once('close', () => h2clients.delete(session));
  });
  acceptBothProtocols(server, h2server, config.clientHeaderTimeoutMs);
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    // Malformed HTTP or a client too slow to send its request: answer and close, as node
    // would, but say why.
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const status = timedOut ? '408 Request Timeout' : '400 Bad Request';
    const body = timedOut
      ? '{"error":{"code":"REQUEST_TIMEOUT","message":"the request was not received in time"}}'
      : `{"error":{"code":"BAD_REQUEST_TARGET","message":"malformed request: ${err.code ?? 'parse error'}"}}`;
    if (socket.writable)
      socket.end(
        `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
    (socket as import('node:net').Socket).destroySoon();
  });
  server.on(
    'upgrade',
    createUpgradeHandler({
      table: () => table,
      resolve: (url) => resolveTarget(url, config.deployment),
      outcomes,
      headersTimeoutMs: config.upstreamTimeoutMs,
    }),
  );
  // A cap on client connections: beyond it a new connection gets a clear 503 and is closed,
  // so a flood of idle sockets cannot use up the proxy's file descriptors.
  let connections = 0;
  server.on('connection', (socket) => {
    if (connections >= config.maxConnections) {
      recorder.connectionsRefused.inc();
      const body =
        '{"error":{"code":"TOO_MANY_CONNECTIONS","message":"the proxy is at CANARY_MAX_CONNECTIONS; retry later"}}';
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\nretry-after: 1\r\n\r\n${body}`,
      );
      socket.destroySoon?.();
      return;
    }
    connections++;
    socket.once('close', () => {
      connections--;
    });
  });
  const admin = createAdminServer({
    recorder,
    table: () => table,
    source: routeSource,
    hasTable: () => appliedAt !== null,
    appliedAt: () => appliedAt,
    allowedHosts: config.allowedHosts,
    headersTimeoutMs: config.clientHeaderTimeoutMs,
  });

  flusher.start();
  predictions?.start();
  const port = await listen(server, config.port, config.host, 'CANARY_PROXY_PORT');
  const adminPort = await listen(admin, config.adminPort, config.host, 'CANARY_ADMIN_PORT');
  policy.protect([port, adminPort]);
  const local = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  logger.info(
    { port, adminPort, mode: config.deployment ? `sidecar:${config.deployment}` : 'gateway' },
    'proxy listening',
  );

  let closing: Promise<void> | null = null;
  return {
    port,
    adminPort,
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
        // HTTP/2 clients get GOAWAY: calls in flight finish, new ones go elsewhere.
        for (const session of h2clients) session.close();
        const grace = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownGraceMs).unref());
        await Promise.race([drained, grace]);
        server.closeAllConnections();
        for (const session of h2clients) session.destroy();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
        admin.closeAllConnections();
        clearInterval(tripRetry);
        await reportTrips();
        shadow.stop();
        await flusher.stop();
        await predictions?.stop();
        await routeSource.stop();
        await pools.close();
        await h2.close();
        logger.info('proxy stopped');
      })();
      return closing;
    },
  };
}

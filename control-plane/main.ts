import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { AddressPolicy, portOf } from '../common/address-policy.js';
import {
  type ControlPlaneConfig,
  loadControlPlaneConfig,
  loadProxyConfig,
  type ProxyConfig,
  portError,
} from '../common/config.js';
import { createLogger, type Logger } from '../common/logger.js';
import { redisRetryStrategy, statsRedis } from '../common/redis.js';
import { MemoryStatsStore } from '../proxy/contract/memory-stats-store.js';
import { RedisStatsStore } from '../proxy/contract/redis-stats-store.js';
import type { StatsStore } from '../proxy/contract/stats.js';
import { PgPredictionSink, type RunningProxy, StaticRouteSource, startProxy } from '../proxy/main.js';
import { AlertDispatcher, DEFAULT_ALERT_POLICY } from './alerts/alerts.js';
import { buildApp } from './api/app.js';
import { ApprovalLinks } from './approvals/links.js';
import { PrometheusSource } from './metrics/prometheus.js';
import { ProxyStatsSource } from './metrics/source.js';
import { DEFAULT_POLICY } from './model/policy.js';
import {
  FanOutPublisher,
  InProcessRoutePublisher,
  RedisRoutePublisher,
  type RoutePublisher,
} from './publish/route-publisher.js';
import { AnalysisLoop } from './rollout/analysis-loop.js';
import { createRollout, type Rollout } from './rollout/rollout.js';
import { type Database, openDatabase } from './state/db.js';
import { FeedbackStore } from './state/feedback-store.js';
import { ControlStore } from './state/store.js';
import { ControlPlaneMetrics } from './telemetry.js';
import { VersionProber } from './versions/prober.js';
import { SnapshotCache } from './xds/cache.js';
import { XdsRoutePublisher } from './xds/publisher.js';
import { XdsServer } from './xds/server.js';

export interface RunningControlPlane {
  url: string;
  port: number;
  app: FastifyInstance;
  rollout: Rollout;
  feedback: FeedbackStore;
  alerts: AlertDispatcher;
  db: Database;
  /** The ADS server, when enabled, and the port it listens on. */
  xds: { server: XdsServer; port: number } | null;
  close(): Promise<void>;
}

export interface ControlPlaneParts {
  /** Programs the data plane; default: Redis when configured. */
  publisher?: RoutePublisher;
  /** Where proxy stats are read; default: Redis when configured. */
  stats?: StatsStore;
  logger?: Logger;
  now?: () => number;
  /** The database, already started (`canary up` starts it while the rest loads); default: from config. */
  db?: Database;
}

/** Starts the control plane: database (real or embedded), rollout core, analysis loop, prober, REST API. */
export async function startControlPlane(
  config: Readonly<ControlPlaneConfig>,
  parts: ControlPlaneParts = {},
): Promise<RunningControlPlane> {
  const logger = parts.logger ?? createLogger('canary-control-plane');
  const db = parts.db ?? (await openDatabase(config, logger));
  const closers: (() => unknown)[] = [];
  let publisher = parts.publisher;
  let stats = parts.stats;
  let redis: Redis | null = null;
  if ((!publisher || !stats) && config.redisUrl) {
    redis = new Redis(config.redisUrl, {
      retryStrategy: redisRetryStrategy,
      maxRetriesPerRequest: 1,
      connectionName: 'canary-control-plane',
    });
    redis.on('error', () => {}); // publish failures are logged where they happen and repaired by reconcile
    const r = redis;
    closers.push(() => r.disconnect());
    publisher ??= new RedisRoutePublisher(redis, config.redisPrefix);
    const statsClient = statsRedis(config.redisUrl);
    closers.push(() => statsClient.disconnect());
    stats ??= new RedisStatsStore(statsClient, config.redisPrefix);
  }
  if (!publisher || !stats) throw new Error('the control plane needs REDIS_URL, or an in-process proxy (canary up)');

  let xds: RunningControlPlane['xds'] = null;
  if (config.xdsPort !== null) {
    const cache = new SnapshotCache();
    const server = new XdsServer(cache, logger);
    const port = await server.listen(config.xdsPort, config.xdsHost).catch((err) => {
      throw portError(err, config.xdsPort!, 'CANARY_XDS_PORT');
    });
    closers.push(() => server.close());
    xds = { server, port };
    publisher = new FanOutPublisher([
      publisher,
      new XdsRoutePublisher(cache, { listenerPort: config.xdsListenerPort }, logger),
    ]);
    logger.info({ port }, 'xDS (ADS) server listening');
  }

  const store = new ControlStore(db.pool);
  const prometheus = config.prometheusUrl ? new PrometheusSource(config.prometheusUrl, config.prometheusFlavor) : null;
  const defaultPolicy = { ...DEFAULT_POLICY, metrics: config.defaultMetricsSource };

  // Version and sink URLs never point at the stack itself or at link-local/metadata addresses.
  const policy = new AddressPolicy({ allow: config.upstreamAllow, ownPorts: [] });
  policy.protect([
    config.apiPort,
    config.xdsPort,
    portOf(config.redisUrl),
    db.embedded ? null : portOf(db.url),
    Number(process.env.CANARY_PROXY_PORT ?? 8080),
    Number(process.env.CANARY_ADMIN_PORT ?? 9901),
  ]);
  const links = new ApprovalLinks(db.pool, config.approvalLinkTtlMs, parts.now);
  const alerts = new AlertDispatcher(
    db.pool,
    logger,
    { ...DEFAULT_ALERT_POLICY, dashboardUrl: config.publicUrl ?? '' },
    policy,
    links,
  );
  const telemetry = new ControlPlaneMetrics(store);
  alerts.onDelivery = (outcome) => telemetry.alertDeliveries.labels(outcome).inc();
  const feedback = new FeedbackStore(db.pool);
  const rollout = createRollout({
    feedback,
    telemetry,
    policy,
    store,
    publisher,
    metrics: new ProxyStatsSource(stats),
    trips: stats,
    examples: stats,
    prometheus,
    defaultPolicy,
    logger,
    now: parts.now,
    onEvents: (e) => alerts.notify(e),
  });
  const loop = new AnalysisLoop(
    rollout,
    store,
    feedback,
    { tickMs: config.analysisTickMs, leaseMs: config.leaderLeaseMs, reconcileMs: config.reconcileMs },
    logger,
    parts.now,
  );
  loop.onLeadership = (leader) => telemetry.leader.set(leader ? 1 : 0);
  loop.onAnalysisFailure = (deployment) => telemetry.analysisFailures.labels(deployment).inc();
  const prober = new VersionProber(store, config.probeIntervalMs, logger);
  const within = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), ms).unref())]);
  const notReady = async () => {
    const failing: string[] = [];
    await within(db.pool.query('SELECT 1'), 2000).catch(() => failing.push('database'));
    if (redis) await within(redis.ping(), 2000).catch(() => failing.push('redis'));
    return failing;
  };
  const app = buildApp({
    rollout,
    feedback,
    registry: telemetry.registry,
    token: config.token,
    allowedOrigins: config.allowedOrigins,
    allowedHosts: config.allowedHosts,
    headersTimeoutMs: config.clientHeaderTimeoutMs,
    notReady,
    logger,
    xds: xds?.server ?? null,
    alerts,
    links,
  });

  await rollout.changes.publishRoutes();
  await app.listen({ port: config.apiPort, host: config.apiHost }).catch((err) => {
    throw portError(err, config.apiPort, 'CANARY_API_PORT');
  });
  const port = (app.server.address() as AddressInfo).port;
  policy.protect([port, xds?.port]);
  loop.start();
  prober.start();
  const host =
    config.apiHost === '::1'
      ? '[::1]'
      : config.apiHost === 'localhost'
        ? '127.0.0.1'
        : config.apiHost === '0.0.0.0'
          ? '127.0.0.1'
          : config.apiHost;
  const url = `http://${host}:${port}`;
  alerts.dashboardUrl = config.publicUrl ?? url;
  logger.info(
    {
      url,
      database: db.embedded ? `embedded (${config.dataDir})` : 'postgresql',
      redis: config.redisUrl ? 'yes' : 'in-process',
      auth: config.token ? 'bearer token' : 'none (loopback only)',
    },
    'control plane listening',
  );

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    app,
    rollout,
    feedback,
    alerts,
    db,
    xds,
    close() {
      closing ??= (async () => {
        prober.stop();
        await loop.stop();
        await app.close();
        await Promise.race([alerts.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
        for (const c of closers) await c();
        await db.close();
      })();
      return closing;
    },
  };
}

export interface RunningStack {
  controlPlane: RunningControlPlane;
  proxy: RunningProxy;
  /** The in-process stats store when there is no Redis (null with Redis). */
  statsStore: StatsStore | null;
  close(): Promise<void>;
}

/**
 * Control plane and proxy on one thread. With REDIS_URL they share Redis (and more proxies
 * can join); without it the route table and stats stay in memory. `canary up` and the demo
 * put the control plane on a thread of its own instead (stack/threaded.ts); this composition
 * is for tests and programs that embed the stack and reach into its parts.
 */
export async function startStack(
  cpConfig: Readonly<ControlPlaneConfig>,
  proxyConfig: Readonly<ProxyConfig>,
  opts: { logger?: Logger; now?: () => number } = {},
): Promise<RunningStack> {
  const logger = opts.logger ?? createLogger('canary');
  // Without Redis the proxy's route source and stats live in this process, shared with the control plane.
  const source = cpConfig.redisUrl ? null : new StaticRouteSource();
  const stats = cpConfig.redisUrl ? null : new MemoryStatsStore();
  const controlPlane = await startControlPlane(
    cpConfig,
    source && stats
      ? { logger, now: opts.now, publisher: new InProcessRoutePublisher(source), stats }
      : { logger, now: opts.now },
  );
  // The prediction log shares the control plane's database (embedded or real).
  const predictionSink = proxyConfig.predictionQueue > 0 ? new PgPredictionSink(controlPlane.db.pool) : undefined;
  let proxy: RunningProxy;
  try {
    if (source && stats) {
      proxy = await startProxy({
        config: proxyConfig,
        routeSource: source,
        statsStore: stats,
        logger,
        predictionSink,
        predictionLog: { maxQueue: proxyConfig.predictionQueue },
      });
    } else {
      const { proxyFromConfig } = await import('../proxy/main.js');
      proxy = await proxyFromConfig(
        { ...proxyConfig, redisUrl: cpConfig.redisUrl, redisPrefix: cpConfig.redisPrefix },
        logger,
        { predictionSink },
      );
    }
  } catch (err) {
    await controlPlane.close();
    throw err;
  }
  // The control plane published before the proxy listened; the in-process source keeps it.
  return {
    controlPlane,
    proxy,
    statsStore: stats,
    close: async () => {
      await proxy.close(); // drains requests and flushes stats and the prediction log first
      await controlPlane.close();
    },
  };
}

function onSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = () => {
    if (stopping) return;
    stopping = true;
    void stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

export async function runControlPlaneCommand(): Promise<void> {
  const cp = await startControlPlane(loadControlPlaneConfig());
  process.stdout.write(`${JSON.stringify({ ready: true, component: 'control-plane', url: cp.url })}\n`);
  onSignal(() => cp.close());
}

export async function runUpCommand(opts: { json?: boolean } = {}): Promise<void> {
  const proxyConfig = loadProxyConfig();
  // On a terminal (`canary up &` beside the commands one types) only warnings and errors are
  // logged, so info lines do not land on the prompt; LOG_LEVEL says otherwise.
  const quiet = process.env.LOG_LEVEL === undefined && process.stdout.isTTY === true;
  const logLevel = quiet ? 'warn' : process.env.LOG_LEVEL;
  const logger = createLogger('canary', logLevel);
  const { startThreadedStack } = await import('./stack/threaded.js');
  const stack = await startThreadedStack(loadControlPlaneConfig(), proxyConfig, { logger, logLevel });
  const xds = stack.controlPlane.xds;
  process.stdout.write(
    `${JSON.stringify({ ready: true, component: 'up', api: stack.controlPlane.url, proxy: stack.proxy.url, admin: stack.proxy.adminUrl, xds: xds ? xds.port : null })}\n`,
  );
  if (!opts.json) {
    process.stdout.write(
      [
        '',
        'canary-mesh is up:',
        proxyConfig.deployment
          ? `  proxy      ${stack.proxy.url}/…   sidecar for ${proxyConfig.deployment}: point its clients here, paths unchanged`
          : `  proxy      ${stack.proxy.url}/{deployment}/…   point clients here`,
        `  API        ${stack.controlPlane.url}/v1   (OpenAPI: /openapi.json, /docs)`,
        `  dashboard  ${stack.controlPlane.url}/`,
        `  admin      ${stack.proxy.adminUrl}   (/metrics, /healthz, /readyz, /routes)`,
        `  xDS        ${xds ? `port ${xds.port} (ADS for Envoy)` : 'off'}`,
        '  next: npx canary deploy NAME --version v1 --url http://your-model:8000',
        ...(quiet ? ['  (logging warnings only on this terminal: LOG_LEVEL=info for more)'] : []),
        '',
      ].join('\n'),
    );
  }
  onSignal(() => stack.close());
  // Without its control plane the proxy would serve a frozen route table unjudged: say so and
  // end (a supervisor restarts the process), after finishing the requests in flight.
  void stack.crashed.then(async () => {
    await stack.proxy.close().catch(() => {});
    process.exit(1);
  });
}

import cluster from 'node:cluster';
import pg from 'pg';
import { ConfigError, loadProxyConfig, type ProxyConfig } from '../common/config.js';
import { createLogger, type Logger } from '../common/logger.js';
import { statsRedis } from '../common/redis.js';
import { MemoryStatsStore } from './contract/memory-stats-store.js';
import { RedisStatsStore } from './contract/redis-stats-store.js';
import type { StatsStore } from './contract/stats.js';
import { type RunningProxy, startProxy } from './proxy.js';
import { RedisRouteSource } from './split/sources/redis-source.js';
import type { RouteSource } from './split/sources/route-source.js';
import { StaticRouteSource } from './split/sources/static-source.js';
import { PgPredictionSink, type PredictionSink } from './telemetry/prediction-log.js';

/**
 * Picks the route source and stats store from config (Redis when REDIS_URL is set) and the
 * prediction log's sink (PostgreSQL when DATABASE_URL is set, unless one is given).
 */
export async function proxyFromConfig(
  config: Readonly<ProxyConfig>,
  logger: Logger,
  extra: { predictionSink?: PredictionSink } = {},
): Promise<RunningProxy> {
  let routeSource: RouteSource;
  let statsStore: StatsStore;
  if (config.redisUrl) {
    routeSource = new RedisRouteSource({
      url: config.redisUrl,
      prefix: config.redisPrefix,
      resyncMs: config.routesResyncMs,
      logger,
    });
    const redis = statsRedis(config.redisUrl);
    statsStore = Object.assign(new RedisStatsStore(redis, config.redisPrefix), {
      close: async () => {
        redis.disconnect();
      },
    });
  } else if (config.routesFile) {
    routeSource = await StaticRouteSource.fromFile(config.routesFile);
    statsStore = new MemoryStatsStore();
  } else {
    throw new ConfigError(
      'canary proxy needs REDIS_URL (routes from the control plane) or CANARY_ROUTES_FILE (a static route table); `canary up` runs proxy and control plane together without either',
    );
  }
  let predictionSink = extra.predictionSink;
  let pgPool: pg.Pool | null = null;
  if (!predictionSink && config.databaseUrl && config.predictionQueue > 0) {
    pgPool = new pg.Pool({ connectionString: config.databaseUrl, max: 2, connectionTimeoutMillis: 5000 });
    pgPool.on('error', (err) => logger.warn({ err: err.message }, 'prediction-log connection failed'));
    predictionSink = new PgPredictionSink(pgPool);
  }
  const proxy = await startProxy({
    config,
    routeSource,
    statsStore,
    logger,
    predictionSink,
    predictionLog: { maxQueue: config.predictionQueue },
  });
  const close = proxy.close;
  proxy.close = async () => {
    await close();
    await statsStore.close?.();
    await pgPool?.end();
  };
  return proxy;
}

/** `canary proxy [--workers N]`: runs until SIGINT/SIGTERM, then shuts down gracefully. */
export async function runProxyCommand(opts: { workers?: number } = {}): Promise<void> {
  const logger = createLogger('canary-proxy');
  const config = loadProxyConfig();
  const workers = opts.workers ?? 1;
  if (workers > 1 && cluster.isPrimary) {
    if (!config.redisUrl)
      logger.warn('with --workers and no REDIS_URL each worker keeps its own stats; set REDIS_URL so they merge');
    logger.info({ workers }, 'starting proxy workers');
    for (let i = 0; i < workers; i++) cluster.fork();
    cluster.on('exit', (w, code, signal) => {
      if (!shuttingDown) {
        logger.error({ worker: w.id, code, signal }, 'proxy worker died; restarting');
        cluster.fork();
      }
    });
    let shuttingDown = false;
    const stop = () => {
      shuttingDown = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return;
  }
  const proxy = await proxyFromConfig(config, logger);
  // Tooling (bench, tests, demo) reads this line to learn the ports when started with port 0.
  process.stdout.write(
    `${JSON.stringify({ ready: true, component: 'proxy', port: proxy.port, adminPort: proxy.adminPort })}\n`,
  );
  const stop = () => void proxy.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

// The proxy's entry point for a process that embeds one (`canary up`): what it takes to start it.
export { type RunningProxy, startProxy } from './proxy.js';
export { StaticRouteSource } from './split/sources/static-source.js';
export { PgPredictionSink, type PredictionRecord, type PredictionSink } from './telemetry/prediction-log.js';

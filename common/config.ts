import { parseDuration } from './duration.js';

/**
 * The one module that reads process.env. Every default is a named constant; values are
 * validated at start and frozen, and a bad one stops the process with a clear message.
 */
export const DEFAULTS = {
  proxyPort: 8080,
  adminPort: 9901,
  apiPort: 8090,
  xdsPort: 18000,
  /** The HTTP listener port Envoy opens when programmed over xDS. */
  xdsListenerPort: 10000,
  /** Backstop re-read of the route table in case a pub/sub message was missed. */
  routesResync: '5s',
  /** Windowed stats leave the proxy about once a second (one pipeline per flush). */
  statsFlush: '1s',
  /** 10 MiB: larger request bodies get 413. */
  maxBodyBytes: 10 * 1024 * 1024,
  /** Bodies up to 64 KiB are buffered before forwarding (faster for small payloads). */
  bufferBodyBytes: 64 * 1024,
  /** Time to the upstream's response headers, and between body chunks. */
  upstreamTimeout: '30s',
  upstreamBodyTimeout: '30s',
  connectTimeout: '5s',
  /** Keep-alive sockets per upstream. */
  upstreamConnections: 128,
  /** How long shutdown waits for in-flight requests before closing them. */
  shutdownGrace: '10s',
  /** Clients: time to send the request headers, the whole request, and idle keep-alive time. */
  clientHeaderTimeout: '60s',
  clientRequestTimeout: '5m',
  clientKeepAlive: '65s',
  /** Concurrent client connections; beyond it a new connection gets 503 and is closed. */
  maxConnections: 10_000,
  /** 256 MiB of request bodies held for retries and hedges at most; beyond it bodies stream and are not retried. */
  bufferBudgetBytes: 256 * 1024 * 1024,
  dataDir: './.canary-data',
  /** Prediction-log records held in memory at most; beyond it they are dropped and counted. */
  predictionQueue: 50_000,
  redisPrefix: 'canary:',
} as const;

export class ConfigError extends Error {
  readonly code = 'BAD_CONFIG';
}

/**
 * A port that cannot be listened on, named by the setting that chose it: "port 8080 is in use
 * (CANARY_PROXY_PORT)" tells a user what to change; node's EADDRINUSE does not.
 */
export function portError(err: Error & { code?: string }, port: number, setting: string): Error {
  if (err.code === 'EADDRINUSE')
    return new ConfigError(
      `port ${port} is in use (${setting}): stop what listens there, or set ${setting} to another port`,
    );
  if (err.code === 'EACCES')
    return new ConfigError(`port ${port} needs privileges this process lacks (${setting}): choose a port above 1023`);
  return err;
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ConfigError(`${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

function duration(env: Env, name: string, dflt: string): number {
  const raw = env[name];
  try {
    return parseDuration(raw === undefined || raw === '' ? dflt : raw, name);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], dflt: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (!values.includes(raw as T))
    throw new ConfigError(`${name}: expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

function list(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function bool(env: Env, name: string, dflt: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (/^(0|false|no)$/i.test(raw)) return false;
  throw new ConfigError(`${name}: expected true or false, got ${JSON.stringify(raw)}`);
}

function url(env: Env, name: string): string | null {
  const raw = env[name];
  if (!raw) return null;
  try {
    new URL(raw);
  } catch {
    throw new ConfigError(`${name}: not a URL: ${JSON.stringify(raw)}`);
  }
  return raw;
}

export interface ProxyConfig {
  host: string;
  port: number;
  adminPort: number;
  /** Sidecar mode when set: every path goes to this deployment unchanged. */
  deployment: string | null;
  redisUrl: string | null;
  redisPrefix: string;
  /** The prediction log goes to this PostgreSQL (tables from the control plane's migrations). */
  databaseUrl: string | null;
  /** Prediction-log records kept in memory while PostgreSQL is slow or down. */
  predictionQueue: number;
  /** Static route table file (tests, benches, no Redis). */
  routesFile: string | null;
  routesResyncMs: number;
  statsFlushMs: number;
  maxBodyBytes: number;
  bufferBodyBytes: number;
  upstreamTimeoutMs: number;
  upstreamBodyTimeoutMs: number;
  connectTimeoutMs: number;
  upstreamConnections: number;
  shutdownGraceMs: number;
  clientHeaderTimeoutMs: number;
  clientRequestTimeoutMs: number;
  clientKeepAliveMs: number;
  maxConnections: number;
  /** Keep the client's x-forwarded-for (the proxy sits behind a trusted load balancer). */
  trustProxy: boolean;
  /** DNS names the admin port answers besides loopback and IP literals (CANARY_ALLOWED_HOSTS). */
  allowedHosts: string[];
  /** Hosts and CIDRs model servers may be at (CANARY_UPSTREAM_ALLOW); null: all but the always-refused ones. */
  upstreamAllow: string[] | null;
  /** Bytes of request bodies held in memory for retries and hedges, across all requests. */
  bufferBudgetBytes: number;
}

export function loadProxyConfig(env: Env = process.env, overrides: Partial<ProxyConfig> = {}): Readonly<ProxyConfig> {
  const cfg: ProxyConfig = {
    host: env.CANARY_PROXY_HOST || '0.0.0.0',
    port: int(env, 'CANARY_PROXY_PORT', DEFAULTS.proxyPort, 0, 65535),
    adminPort: int(env, 'CANARY_ADMIN_PORT', DEFAULTS.adminPort, 0, 65535),
    deployment: env.CANARY_DEPLOYMENT || null,
    redisUrl: url(env, 'REDIS_URL'),
    redisPrefix: env.CANARY_REDIS_PREFIX || DEFAULTS.redisPrefix,
    databaseUrl: url(env, 'DATABASE_URL'),
    predictionQueue: int(env, 'CANARY_PREDICTION_QUEUE', DEFAULTS.predictionQueue, 0),
    routesFile: env.CANARY_ROUTES_FILE || null,
    routesResyncMs: duration(env, 'CANARY_ROUTES_RESYNC', DEFAULTS.routesResync),
    statsFlushMs: duration(env, 'CANARY_STATS_FLUSH', DEFAULTS.statsFlush),
    maxBodyBytes: int(env, 'CANARY_MAX_BODY_BYTES', DEFAULTS.maxBodyBytes, 1),
    bufferBodyBytes: int(env, 'CANARY_BUFFER_BODY_BYTES', DEFAULTS.bufferBodyBytes, 0),
    upstreamTimeoutMs: duration(env, 'CANARY_UPSTREAM_TIMEOUT', DEFAULTS.upstreamTimeout),
    upstreamBodyTimeoutMs: duration(env, 'CANARY_UPSTREAM_BODY_TIMEOUT', DEFAULTS.upstreamBodyTimeout),
    connectTimeoutMs: duration(env, 'CANARY_CONNECT_TIMEOUT', DEFAULTS.connectTimeout),
    upstreamConnections: int(env, 'CANARY_UPSTREAM_CONNECTIONS', DEFAULTS.upstreamConnections, 1, 10_000),
    shutdownGraceMs: duration(env, 'CANARY_SHUTDOWN_GRACE', DEFAULTS.shutdownGrace),
    clientHeaderTimeoutMs: duration(env, 'CANARY_CLIENT_HEADER_TIMEOUT', DEFAULTS.clientHeaderTimeout),
    clientRequestTimeoutMs: duration(env, 'CANARY_CLIENT_REQUEST_TIMEOUT', DEFAULTS.clientRequestTimeout),
    clientKeepAliveMs: duration(env, 'CANARY_CLIENT_KEEPALIVE', DEFAULTS.clientKeepAlive),
    maxConnections: int(env, 'CANARY_MAX_CONNECTIONS', DEFAULTS.maxConnections, 1, 10_000_000),
    trustProxy: bool(env, 'CANARY_TRUST_PROXY', false),
    allowedHosts: list(env, 'CANARY_ALLOWED_HOSTS'),
    upstreamAllow: list(env, 'CANARY_UPSTREAM_ALLOW').length ? list(env, 'CANARY_UPSTREAM_ALLOW') : null,
    bufferBudgetBytes: int(env, 'CANARY_BUFFER_BUDGET_BYTES', DEFAULTS.bufferBudgetBytes, 0),
    ...overrides,
  };
  if (cfg.bufferBodyBytes > cfg.maxBodyBytes)
    throw new ConfigError('CANARY_BUFFER_BODY_BYTES must not exceed CANARY_MAX_BODY_BYTES');
  if (cfg.clientHeaderTimeoutMs <= 0 || cfg.clientRequestTimeoutMs < cfg.clientHeaderTimeoutMs)
    throw new ConfigError(
      'CANARY_CLIENT_REQUEST_TIMEOUT must be at least CANARY_CLIENT_HEADER_TIMEOUT, and both above 0',
    );
  return Object.freeze(cfg);
}

export const CONTROL_DEFAULTS = {
  /** How often the analysis loop wakes to find due canaries (each has its own interval). */
  analysisTick: '1s',
  /** Leader lease: a dead leader is replaced after at most this long. */
  leaderLease: '10s',
  /** Route table republished this often so Redis can never stay stale. */
  reconcile: '5s',
  /** Health probes of serving, canary and recent versions. */
  probeInterval: '10s',
  approvalLinkTtl: '24h',
} as const;

export interface ControlPlaneConfig {
  apiHost: string;
  /** The API's client header timeout (CANARY_CLIENT_HEADER_TIMEOUT, as the proxy's), checked every second. */
  clientHeaderTimeoutMs: number;
  apiPort: number;
  /** null: no auth, and then the API only listens on loopback. */
  token: string | null;
  /** Origins besides the API's own allowed to send requests (browsers on other sites: none by default). */
  allowedOrigins: string[];
  /** Host header values accepted besides loopback names when there is no token (DNS-rebinding defence). */
  allowedHosts: string[];
  /** Hosts and CIDRs version and sink URLs may point at (CANARY_UPSTREAM_ALLOW); null: all but the always-refused ones. */
  upstreamAllow: string[] | null;
  databaseUrl: string | null;
  redisUrl: string | null;
  redisPrefix: string;
  dataDir: string;
  /** Base URL people reach the dashboard at, for links in alerts (default: the API's own). */
  publicUrl: string | null;
  /** How long an alert's approval link stays valid (CANARY_APPROVAL_LINK_TTL, default 24h). */
  approvalLinkTtlMs: number;
  /** Prometheus HTTP API for policy.metrics "prometheus"; null = not available. */
  prometheusUrl: string | null;
  /** Which metrics Prometheus holds: the canary-mesh proxy's, or Envoy's. */
  prometheusFlavor: 'proxy' | 'envoy';
  /** The metrics source a canary uses when its policy does not say. */
  defaultMetricsSource: 'proxy' | 'prometheus';
  /** ADS gRPC port for Envoy and proxyless gRPC clients; null = no xDS server. */
  xdsPort: number | null;
  xdsHost: string;
  /** Port of the HTTP listener the xDS server gives Envoy. */
  xdsListenerPort: number;
  analysisTickMs: number;
  leaderLeaseMs: number;
  reconcileMs: number;
  probeIntervalMs: number;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function loadControlPlaneConfig(
  env: Env = process.env,
  overrides: Partial<ControlPlaneConfig> = {},
): Readonly<ControlPlaneConfig> {
  const cfg: ControlPlaneConfig = {
    apiHost: env.CANARY_API_HOST || '127.0.0.1',
    clientHeaderTimeoutMs: duration(env, 'CANARY_CLIENT_HEADER_TIMEOUT', DEFAULTS.clientHeaderTimeout),
    apiPort: int(env, 'CANARY_API_PORT', DEFAULTS.apiPort, 0, 65535),
    token: env.CANARY_API_TOKEN || null,
    allowedOrigins: list(env, 'CANARY_ALLOWED_ORIGINS'),
    allowedHosts: list(env, 'CANARY_ALLOWED_HOSTS').map((h) => h.toLowerCase()),
    upstreamAllow: list(env, 'CANARY_UPSTREAM_ALLOW').length ? list(env, 'CANARY_UPSTREAM_ALLOW') : null,
    databaseUrl: url(env, 'DATABASE_URL'),
    redisUrl: url(env, 'REDIS_URL'),
    redisPrefix: env.CANARY_REDIS_PREFIX || DEFAULTS.redisPrefix,
    dataDir: env.CANARY_DATA_DIR || DEFAULTS.dataDir,
    publicUrl: url(env, 'CANARY_PUBLIC_URL'),
    approvalLinkTtlMs: duration(env, 'CANARY_APPROVAL_LINK_TTL', CONTROL_DEFAULTS.approvalLinkTtl),
    prometheusUrl: url(env, 'CANARY_PROMETHEUS_URL'),
    prometheusFlavor: oneOf(env, 'CANARY_PROMETHEUS_FLAVOR', ['proxy', 'envoy'] as const, 'proxy'),
    defaultMetricsSource: oneOf(env, 'CANARY_METRICS_SOURCE', ['proxy', 'prometheus'] as const, 'proxy'),
    xdsPort: env.CANARY_XDS_PORT === 'off' ? null : int(env, 'CANARY_XDS_PORT', DEFAULTS.xdsPort, 0, 65535),
    xdsHost: env.CANARY_XDS_HOST || '0.0.0.0',
    xdsListenerPort: int(env, 'CANARY_XDS_LISTENER_PORT', DEFAULTS.xdsListenerPort, 1, 65535),
    analysisTickMs: duration(env, 'CANARY_ANALYSIS_TICK', CONTROL_DEFAULTS.analysisTick),
    leaderLeaseMs: duration(env, 'CANARY_LEADER_LEASE', CONTROL_DEFAULTS.leaderLease),
    reconcileMs: duration(env, 'CANARY_RECONCILE', CONTROL_DEFAULTS.reconcile),
    probeIntervalMs: duration(env, 'CANARY_PROBE_INTERVAL', CONTROL_DEFAULTS.probeInterval),
    ...overrides,
  };
  if (!cfg.token && !LOOPBACK.has(cfg.apiHost)) {
    throw new ConfigError(
      `CANARY_API_HOST=${cfg.apiHost} without CANARY_API_TOKEN: refusing to expose an unauthenticated API beyond loopback; set CANARY_API_TOKEN`,
    );
  }
  if (cfg.defaultMetricsSource === 'prometheus' && !cfg.prometheusUrl)
    throw new ConfigError('CANARY_METRICS_SOURCE=prometheus needs CANARY_PROMETHEUS_URL');
  if (cfg.leaderLeaseMs < 2 * cfg.analysisTickMs)
    throw new ConfigError('CANARY_LEADER_LEASE must be at least twice CANARY_ANALYSIS_TICK so the leader can renew it');
  return Object.freeze(cfg);
}

/**
 * Every environment variable canary-mesh reads, in one list: the README documents each and
 * a test checks that compose.yaml and the sources use no other.
 */
export const ENV_VARS = [
  'CANARY_PROXY_PORT',
  'CANARY_PROXY_HOST',
  'CANARY_ADMIN_PORT',
  'CANARY_API_PORT',
  'CANARY_API_HOST',
  'CANARY_API_TOKEN',
  'CANARY_API_URL',
  'REDIS_URL',
  'CANARY_REDIS_PREFIX',
  'DATABASE_URL',
  'CANARY_DATA_DIR',
  'CANARY_DEPLOYMENT',
  'CANARY_ROUTES_FILE',
  'CANARY_ROUTES_RESYNC',
  'CANARY_STATS_FLUSH',
  'CANARY_MAX_BODY_BYTES',
  'CANARY_BUFFER_BODY_BYTES',
  'CANARY_UPSTREAM_TIMEOUT',
  'CANARY_UPSTREAM_BODY_TIMEOUT',
  'CANARY_CONNECT_TIMEOUT',
  'CANARY_UPSTREAM_CONNECTIONS',
  'CANARY_SHUTDOWN_GRACE',
  'CANARY_CLIENT_HEADER_TIMEOUT',
  'CANARY_CLIENT_REQUEST_TIMEOUT',
  'CANARY_CLIENT_KEEPALIVE',
  'CANARY_MAX_CONNECTIONS',
  'CANARY_TRUST_PROXY',
  'CANARY_BUFFER_BUDGET_BYTES',
  'CANARY_ALLOWED_ORIGINS',
  'CANARY_ALLOWED_HOSTS',
  'CANARY_UPSTREAM_ALLOW',
  'CANARY_PREDICTION_QUEUE',
  'CANARY_ANALYSIS_TICK',
  'CANARY_LEADER_LEASE',
  'CANARY_RECONCILE',
  'CANARY_PROBE_INTERVAL',
  'CANARY_PROMETHEUS_URL',
  'CANARY_PROMETHEUS_FLAVOR',
  'CANARY_PUBLIC_URL',
  'CANARY_APPROVAL_LINK_TTL',
  'CANARY_METRICS_SOURCE',
  'CANARY_XDS_PORT',
  'CANARY_XDS_HOST',
  'CANARY_XDS_LISTENER_PORT',
  'CANARY_FAULT_ERROR_RATE',
  'CANARY_FAULT_LATENCY',
  'CANARY_FAULT_JITTER',
  'CANARY_FAULT_HANG_RATE',
  'CANARY_MODEL',
  'CANARY_MODEL_VERSION',
  'PORT',
  'HOST',
  'LOG_LEVEL',
  'NO_COLOR',
] as const;

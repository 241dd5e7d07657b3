import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { ERRORS, errorBody, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ProxyConfig } from '../common/config.js';
import type { DeploymentRoute, Role, RouteTable, Upstream } from './split/route-table.js';
import { pickVariant } from './split/splitter.js';
import { BodyTooLargeError, prepareBody, type RequestBody } from './upstream/body.js';
import { forward, type ForwardResult } from './upstream/forward.js';
import { requestHeadersForUpstream } from './upstream/headers.js';
import type { UpstreamPools } from './upstream/pools.js';
import type { ProxyRecorder } from './telemetry/recorder.js';
import type { Outcome, StatsAccumulator } from './telemetry/stats.js';
import type { PredictionLog } from './telemetry/prediction-log.js';

export interface HandlerDeps {
  config: Readonly<ProxyConfig>;
  table: () => RouteTable;
  pools: UpstreamPools;
  recorder: ProxyRecorder;
  stats: StatsAccumulator;
  logger: Logger;
  /** When set, every answered request is logged (request id, version, input hash, outcome). */
  predictions?: PredictionLog;
}

/** Which deployment a request is for, and the path to send upstream. */
export function resolveTarget(url: string | undefined, sidecarDeployment: string | null): { deployment: string; path: string } | null {
  if (!url || url[0] !== '/') return null;
  if (sidecarDeployment) return { deployment: sidecarDeployment, path: url };
  // Gateway mode: /{deployment}/{rest} → /{rest}
  let end = 1;
  while (end < url.length && url[end] !== '/' && url[end] !== '?') end++;
  let deployment: string;
  try {
    deployment = decodeURIComponent(url.slice(1, end));
  } catch {
    return null;
  }
  const rest = url.slice(end);
  return { deployment, path: rest === '' ? '/' : rest[0] === '?' ? `/${rest}` : rest };
}

function sendError(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code, message);
  res.writeHead(ERRORS[code].status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

const FAILURE_TO_ERROR: Partial<Record<Outcome, ErrorCode>> = {
  timeout: 'UPSTREAM_TIMEOUT',
  connection_error: 'UPSTREAM_UNAVAILABLE',
  server_error: 'UPSTREAM_BAD_RESPONSE',
};

/**
 * The data-plane request path: resolve the deployment, pick a variant from the in-memory
 * table, forward, record the outcome. No I/O besides the upstream call.
 */
export function createRequestHandler(deps: HandlerDeps) {
  const { config, pools, recorder, stats, logger } = deps;

  function record(deployment: string, upstream: Upstream, role: Role, outcome: Outcome, t0: number): void {
    const latencyMs = performance.now() - t0;
    recorder.record(deployment, upstream.version, role, outcome, latencyMs);
    stats.record(deployment, upstream.version, outcome, latencyMs, Date.now());
  }

  async function send(route: DeploymentRoute, role: Role, upstream: Upstream, req: IncomingMessage, res: ServerResponse,
    path: string, headers: Record<string, string | string[]>, body: RequestBody, requestId: string,
    discardServerErrors: boolean, extra: Record<string, string> = {}): Promise<ForwardResult> {
    const t0 = performance.now();
    const result = await forward(pools.get(upstream.url), {
      method: req.method ?? 'GET', path, headers, body,
      headersTimeoutMs: config.upstreamTimeoutMs, bodyTimeoutMs: config.upstreamBodyTimeoutMs,
    }, res, { 'x-canary-variant': role, 'x-canary-version': upstream.version, 'x-request-id': requestId, ...extra }, discardServerErrors);
    if (result.statusCode !== 413 || !(result.error instanceof BodyTooLargeError)) record(route.name, upstream, role, result.outcome, t0);
    return result;
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const target = resolveTarget(req.url, config.deployment);
    if (!target) return sendError(res, 'BAD_REQUEST_TARGET', `cannot parse request target ${JSON.stringify(req.url)}`);
    const route = deps.table().deployments[target.deployment];
    if (!route) return sendError(res, 'UNKNOWN_DEPLOYMENT', `no route for deployment ${JSON.stringify(target.deployment)}`);

    const key = req.headers['x-canary-key'];
    const pick = pickVariant(route, typeof key === 'string' && key !== '' ? key : undefined);
    const incomingId = req.headers['x-request-id'];
    const requestId = typeof incomingId === 'string' && incomingId !== '' ? incomingId : randomUUID();
    const canRetry = pick.role === 'canary' && route.retryCanaryOnBaseline !== false;
    const variantHeaders = { 'x-canary-variant': pick.role, 'x-canary-version': pick.upstream.version, 'x-request-id': requestId };

    let body: RequestBody;
    try {
      body = await prepareBody(req, { maxBytes: config.maxBodyBytes, bufferBytes: config.bufferBodyBytes }, canRetry);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return sendError(res, 'BODY_TOO_LARGE', err.message, { ...variantHeaders, connection: 'close' });
      return; // the client aborted while sending its body
    }
    const headers = requestHeadersForUpstream(req.headers, requestId, req.socket.remoteAddress);
    const retryPossible = canRetry && (body === null || Buffer.isBuffer(body));

    const first = await send(route, pick.role, pick.upstream, req, res, target.path, headers, body, requestId, retryPossible);
    let final = first;
    let finalRole = pick.role;
    let finalUpstream = pick.upstream;
    const failed = first.outcome === 'server_error' || first.outcome === 'timeout' || first.outcome === 'connection_error';
    if (retryPossible && failed && !first.responded && !res.destroyed) {
      // The canary failure is already counted; the user gets the baseline's answer.
      recorder.canaryRetries.labels(route.name).inc();
      final = await send(route, 'baseline', route.baseline, req, res, target.path, headers, body, requestId, false, { 'x-canary-retried-from': pick.upstream.version });
      finalRole = 'baseline';
      finalUpstream = route.baseline;
    }
    if (deps.predictions && final.outcome !== 'aborted') {
      deps.predictions.record({
        requestId, deployment: route.name, version: finalUpstream.version, role: finalRole,
        inputSha256: body === null ? EMPTY_SHA256 : Buffer.isBuffer(body) ? createHash('sha256').update(body).digest('hex') : null,
        outcome: final.outcome, latencyMs: performance.now() - started, at: Date.now(),
      });
    }
    if (!final.responded && final.outcome !== 'aborted') {
      if (final.error instanceof BodyTooLargeError) return sendError(res, 'BODY_TOO_LARGE', final.error.message, { ...variantHeaders, connection: 'close' });
      const code = FAILURE_TO_ERROR[final.outcome] ?? 'UPSTREAM_BAD_RESPONSE';
      logger.debug({ deployment: route.name, version: finalUpstream.version, err: final.error?.message }, 'upstream failed');
      sendError(res, code, `${finalRole} ${finalUpstream.version}: ${final.error?.message ?? 'upstream failed'}`,
        { 'x-canary-variant': finalRole, 'x-canary-version': finalUpstream.version, 'x-request-id': requestId });
    }
  };
}

import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ProxyConfig } from '../common/config.js';
import { ERRORS, type ErrorCode, errorBody } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { DeploymentRoute, Role, RouteTable, Upstream } from './contract/route-table.js';
import { isModelError, type Outcome } from './contract/stats.js';
import { MAX_SHADOW_ANSWER_BYTES, type ShadowMirror } from './shadow/mirror.js';
import { pickVariant } from './split/splitter.js';
import type { CanaryTripper } from './split/trips.js';
import type { StatsAccumulator } from './telemetry/accumulator.js';
import type { PredictionLog } from './telemetry/prediction-log.js';
import type { ProxyRecorder } from './telemetry/recorder.js';
import { BodyTooLargeError, prepareBody, type RequestBody } from './upstream/body.js';
import { Cancel } from './upstream/cancel.js';
import { AnswerCapture, type ForwardResult, forward } from './upstream/forward.js';
import { requestHeadersForUpstream } from './upstream/headers.js';
import { hedgeDelay, type LatencyTracker } from './upstream/hedge.js';
import type { UpstreamPools } from './upstream/pools.js';

export interface HandlerDeps {
  config: Readonly<ProxyConfig>;
  table: () => RouteTable;
  pools: UpstreamPools;
  recorder: ProxyRecorder;
  stats: StatsAccumulator;
  logger: Logger;
  /** When set, every answered request is logged (request id, version, input hash, outcome). */
  predictions?: PredictionLog;
  /** The local fast trip for grossly failing canaries. */
  trips: CanaryTripper;
  /** The baseline's live latency, for "auto" hedging. */
  latency: LatencyTracker;
  /** Shadow traffic for canaries in their shadow phase. */
  shadow: ShadowMirror;
}

/** A path segment that is "." or "..", also when its dots are percent-encoded. */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * The path below the deployment with dot-segments removed once (RFC 3986 §5.2.4), or null
 * when one would climb out of it (`/echo/../iris/predict` must not reach echo as
 * `/../iris/predict`, nor iris). The query is kept as is.
 */
export function normalizeRest(rest: string): string | null {
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  if (!path.includes('.') && !/%2e/i.test(path)) return rest; // the common case: nothing to do
  const out: string[] = [];
  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (DOT_SEGMENT.test(seg)) {
      if (seg.replace(/%2e/gi, '.') === '..') {
        if (out.length === 0) return null;
        out.pop();
      }
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return `/${out.join('/')}${q < 0 ? '' : rest.slice(q)}`;
}

/** Which deployment a request is for, and the path to send upstream; null when it cannot be parsed or leaves the deployment. */
export function resolveTarget(
  url: string | undefined,
  sidecarDeployment: string | null,
): { deployment: string; path: string } | null {
  if (url?.[0] !== '/') return null;
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
  if (DOT_SEGMENT.test(url.slice(1, end))) return null;
  const raw = url.slice(end);
  const rest = normalizeRest(raw === '' ? '/' : raw[0] === '?' ? `/${raw}` : raw);
  return rest === null ? null : { deployment, path: rest };
}

/** An incoming x-request-id is kept only when it is short and printable; otherwise a fresh one replaces it (and the original is never stored). */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

function sendError(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code, message);
  res.writeHead(ERRORS[code].status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

const FAILURE_TO_ERROR: Partial<Record<Outcome, ErrorCode>> = {
  client_error: 'BAD_REQUEST_TARGET',
  timeout: 'UPSTREAM_TIMEOUT',
  connection_error: 'UPSTREAM_UNAVAILABLE',
  server_error: 'UPSTREAM_BAD_RESPONSE',
};

/**
 * The data-plane request path: resolve the deployment, pick a variant from the in-memory
 * table, forward, record the outcome. No I/O besides the upstream call.
 */
export function createRequestHandler(deps: HandlerDeps) {
  const { config, pools, recorder, stats, logger, trips, latency, shadow } = deps;
  /** Canary requests in flight per deployment: beyond the pool's size they would queue behind hung ones. */
  const canaryInFlight = new Map<string, number>();
  /** Bytes of request bodies held for a possible retry or hedge, across all requests in flight. */
  let bufferedBytes = 0;

  /**
   * Metrics count every upstream attempt. The windowed stats the analysis reads count only
   * requests the split routed (`analysed`): a retry or hedge of a canary request on the
   * baseline, or a request diverted because too many canary requests hang, is not a routing
   * draw, and counting it would tie the baseline's numbers to the canary's behaviour.
   */
  function record(
    deployment: string,
    upstream: Upstream,
    role: Role,
    outcome: Outcome,
    latencyMs: number,
    analysed: boolean,
  ): void {
    recorder.record(deployment, upstream.version, role, outcome, latencyMs);
    if (!analysed) return;
    stats.record(deployment, upstream.version, outcome, latencyMs, Date.now());
    if (role === 'baseline' && outcome === 'success') latency.observe(deployment, latencyMs);
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const target = resolveTarget(req.url, config.deployment);
    if (!target)
      return sendError(
        res,
        'BAD_REQUEST_TARGET',
        `cannot parse request target ${JSON.stringify(req.url?.slice(0, 200))}, or its dot-segments leave the deployment`,
      );
    const table = deps.table();
    const route = table.deployments[target.deployment];
    if (!route)
      return sendError(res, 'UNKNOWN_DEPLOYMENT', `no route for deployment ${JSON.stringify(target.deployment)}`);
    const settings = route.settings ?? {};
    const method = req.method ?? 'GET';

    const key = req.headers['x-canary-key'];
    const pick = pickVariant(route, typeof key === 'string' && key !== '' ? key : undefined);
    let role = pick.role;
    let upstream = pick.upstream;
    let analysed = true;
    // A tester picks the variant (where the deployment allows it): not a routing draw, so not
    // analysed, not retried or hedged (the tester wants that variant's own answer), not logged.
    const force = settings.allowForcedVariant ? req.headers['x-canary-force'] : undefined;
    const forced = force === 'baseline' || (force === 'canary' && route.canary !== null);
    if (forced) {
      role = force as Role;
      upstream = role === 'canary' ? route.canary! : route.baseline;
      analysed = false;
    } else if (role === 'canary' && trips.isTripped(route.name, upstream.version)) {
      // Tripped: the canary is off live traffic until the control plane publishes a newer table.
      role = 'baseline';
      upstream = route.baseline;
      analysed = false;
      recorder.canaryDiverted.labels(route.name, 'tripped').inc();
    } else if (role === 'canary' && (canaryInFlight.get(route.name) ?? 0) >= config.upstreamConnections) {
      role = 'baseline';
      upstream = route.baseline;
      analysed = false;
      recorder.canaryDiverted.labels(route.name, 'in_flight_cap').inc();
    }
    const incomingId = req.headers['x-request-id'];
    const requestId = typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    // Retries and hedges send a request twice: only for methods the deployment says are safe.
    const repeatable = !settings.retryMethods || settings.retryMethods.includes(method);
    // Holding the body for a resend costs memory: past the budget, the body streams and the
    // request is not retried or hedged (it still counts, and still goes to the canary).
    const declared = Number(req.headers['content-length'] ?? 0) || 0;
    const wantsNet = role === 'canary' && !forced && route.retryCanaryOnBaseline !== false && repeatable;
    // A shadowed request is sent twice too, and compared: its body is held within the same
    // budget, and only small bodies are shadowed (past bufferBodyBytes the shadow is dropped).
    // (Only methods safe to send twice: the noise floor sends a request to the baseline twice.)
    const shadowed = role === 'baseline' && analysed && !forced && repeatable && shadow.sampled(route);
    const shadowFits =
      shadowed && declared <= config.bufferBodyBytes && bufferedBytes + declared <= config.bufferBudgetBytes;
    if (shadowed && !shadowFits) shadow.drop(route);
    const hold = (wantsNet && bufferedBytes + declared <= config.bufferBudgetBytes) || shadowFits;
    if (wantsNet && !hold) recorder.bufferBudgetExceeded.inc();
    const variantHeaders = {
      'x-canary-variant': role,
      'x-canary-version': upstream.version,
      'x-request-id': requestId,
    };
    const forcedHeader: Record<string, string> = forced ? { 'x-canary-forced': 'true' } : {};

    let body: RequestBody;
    try {
      body = await prepareBody(req, { maxBytes: config.maxBodyBytes, bufferBytes: config.bufferBodyBytes }, hold);
    } catch (err) {
      if (err instanceof BodyTooLargeError)
        return sendError(res, 'BODY_TOO_LARGE', err.message, { ...variantHeaders, connection: 'close' });
      return; // the client aborted while sending its body
    }
    const headers = requestHeadersForUpstream(
      req.headersDistinct,
      requestId,
      req.socket.remoteAddress,
      config.trustProxy,
    );
    const resendable = hold && (body === null || Buffer.isBuffer(body));
    const held = resendable && Buffer.isBuffer(body) ? body.length : 0;
    bufferedBytes += held;
    let inputSha256: string | null | undefined;
    const inputHash = () =>
      (inputSha256 ??=
        body === null ? EMPTY_SHA256 : Buffer.isBuffer(body) ? createHash('sha256').update(body).digest('hex') : null);
    let compareShadow: ((baseline: ReturnType<AnswerCapture['answer']>) => void) | null = null;
    let capture: AnswerCapture | undefined;
    if (shadowFits) {
      if (resendable && (body === null || (body as Buffer).length <= config.bufferBodyBytes)) {
        compareShadow = shadow.start(route, {
          method,
          path: target.path,
          headers,
          body: body as Buffer | null,
          requestId,
          inputSha256: inputHash()!,
        });
        if (compareShadow) capture = new AnswerCapture(MAX_SHADOW_ANSWER_BYTES);
      } else shadow.drop(route);
    }
    // A client that goes away before the answer is complete aborts the upstream requests at
    // once, so the model server stops working for nobody.
    const client = new Cancel();
    res.once('close', () => {
      if (!res.writableFinished) client.cancel('client');
    });

    const attempt = (
      to: Upstream,
      as: Role,
      signal: Cancel,
      discardServerErrors: boolean,
      extra: Record<string, string> = {},
      claim?: () => boolean,
    ) =>
      forward(
        pools.get(to.url),
        {
          method,
          path: target.path,
          headers,
          body,
          signal,
          capture: as === 'baseline' ? capture : undefined,
          headersTimeoutMs: settings.headersTimeoutMs ?? config.upstreamTimeoutMs,
          bodyTimeoutMs: settings.idleTimeoutMs ?? config.upstreamBodyTimeoutMs,
        },
        res,
        { 'x-canary-variant': as, 'x-canary-version': to.version, 'x-request-id': requestId, ...extra },
        discardServerErrors,
        claim,
      );

    let final: ForwardResult;
    let finalRole: Role = role;
    let finalUpstream = upstream;
    try {
      if (role === 'canary' && !forced) {
        ({
          result: final,
          role: finalRole,
          upstream: finalUpstream,
        } = await canaryRequest(route, upstream, resendable, attempt, client, table.version));
      } else {
        const t0 = performance.now();
        final = await attempt(upstream, role, client, false, forcedHeader);
        if (forced) recorder.forced.labels(route.name, upstream.version, role, final.outcome).inc();
        else if (!isOwnBodyTooLarge(final))
          record(route.name, upstream, role, final.outcome, performance.now() - t0, analysed);
      }
    } finally {
      bufferedBytes -= held;
    }
    // The shadow compares with the answer the user got, when the user got a whole one.
    compareShadow?.(
      final.responded && (final.outcome === 'success' || final.outcome === 'client_error') ? capture!.answer() : null,
    );
    if (deps.predictions && final.outcome !== 'aborted' && !forced) {
      deps.predictions.record({
        requestId,
        deployment: route.name,
        version: finalUpstream.version,
        role: finalRole,
        inputSha256: inputHash(),
        outcome: final.outcome,
        latencyMs: performance.now() - started,
        at: Date.now(),
      });
    }
    if (!final.responded && final.outcome !== 'aborted') {
      if (final.error instanceof BodyTooLargeError)
        return sendError(res, 'BODY_TOO_LARGE', final.error.message, { ...variantHeaders, connection: 'close' });
      const code = FAILURE_TO_ERROR[final.outcome] ?? 'UPSTREAM_BAD_RESPONSE';
      logger.debug(
        { deployment: route.name, version: finalUpstream.version, err: final.error?.message },
        'upstream failed',
      );
      sendError(res, code, `${finalRole} ${finalUpstream.version}: ${final.error?.message ?? 'upstream failed'}`, {
        'x-canary-variant': finalRole,
        'x-canary-version': finalUpstream.version,
        'x-request-id': requestId,
      });
    }
  };

  type Attempt = (
    to: Upstream,
    as: Role,
    signal: Cancel,
    discardServerErrors: boolean,
    extra?: Record<string, string>,
    claim?: () => boolean,
  ) => Promise<ForwardResult>;

  /**
   * A canary request, with the baseline as its safety net when the body can be resent:
   * - hedge: not answered after the hedge delay, the request also goes to the baseline; the
   *   first answer to arrive (response headers) goes to the user and the other is aborted. A
   *   canary that lost the race is charged a `timeout`: it did not answer in time.
   * - retry: a canary failure before any byte reached the user is retried on the baseline.
   * The user never waits on a hanging canary longer than the hedge delay plus the baseline.
   */
  async function canaryRequest(
    route: DeploymentRoute,
    canary: Upstream,
    resendable: boolean,
    attempt: Attempt,
    client: Cancel,
    tableVersion: number,
  ) {
    const name = route.name;
    const canaryCtl = new Cancel(),
      baselineCtl = new Cancel();
    const onClient = () => {
      canaryCtl.cancel('client');
      baselineCtl.cancel('client');
    };
    if (client.aborted) onClient();
    else client.once('abort', onClient);
    let winner: Role | null = null;
    const claim = (r: Role) => () => {
      if (winner === null) {
        winner = r;
        (r === 'canary' ? baselineCtl : canaryCtl).cancel('lost');
      }
      return winner === r;
    };
    let backup: Promise<ForwardResult> | null = null;
    let backupT0 = 0;
    const startBackup = (header: 'x-canary-hedged-from' | 'x-canary-retried-from') => {
      if (!backup) {
        (header === 'x-canary-hedged-from' ? recorder.canaryHedges : recorder.canaryRetries).labels(name).inc();
        backupT0 = performance.now();
        backup = attempt(
          route.baseline,
          'baseline',
          baselineCtl,
          false,
          { [header]: canary.version },
          claim('baseline'),
        );
      }
      return backup;
    };
    const delay = resendable ? hedgeDelay(route.settings, latency, name) : null;
    const timer = delay === null ? null : setTimeout(() => startBackup('x-canary-hedged-from'), delay);

    canaryInFlight.set(name, (canaryInFlight.get(name) ?? 0) + 1);
    const t0 = performance.now();
    const result = await attempt(canary, 'canary', canaryCtl, resendable, {}, claim('canary'));
    const canaryMs = performance.now() - t0;
    canaryInFlight.set(name, (canaryInFlight.get(name) ?? 1) - 1);
    if (timer) clearTimeout(timer);

    const lostRace = canaryCtl.why === 'lost';
    const outcome: Outcome = lostRace ? 'timeout' : result.outcome;
    if (!isOwnBodyTooLarge(result)) record(name, canary, 'canary', outcome, canaryMs, true);
    if (outcome !== 'aborted') trips.observe(name, canary.version, outcome, isModelError(outcome), tableVersion);

    if (!lostRace && (result.responded || !isModelError(result.outcome)))
      return { result, role: 'canary' as Role, upstream: canary };
    if (!backup && resendable && !client.aborted) startBackup('x-canary-retried-from');
    if (!backup) return { result, role: 'canary' as Role, upstream: canary };
    const b = (await backup) as ForwardResult;
    record(name, route.baseline, 'baseline', b.outcome, performance.now() - backupT0, false);
    return { result: b, role: 'baseline' as Role, upstream: route.baseline };
  }
}

/** A 413 the proxy raised itself while streaming the client's body: nobody's model is involved. */
const isOwnBodyTooLarge = (r: ForwardResult) => r.statusCode === 413 && r.error instanceof BodyTooLargeError;

import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { ProxyConfig } from '../common/config.js';
import type { ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { type Role, type RouteSettings, type RouteTable, upstreamParts } from './contract/route-table.js';
import { grpcOutcomesFor, isGrpcContentType } from './grpc/status.js';
import type { ClientAnswer, ClientRequest } from './protocol/client-exchange.js';
import { GrpcCallResponse } from './protocol/grpc-call.js';
import { Attempts, variantHeaders } from './request/attempts.js';
import { HeldBodies, planBody } from './request/body-plan.js';
import { CanaryInFlight, canaryRequest } from './request/canary-request.js';
import { FAILURE_TO_ERROR, isOwnBodyTooLarge, sendGrpcError, sendError as sendHttpError } from './request/errors.js';
import type { OutcomeRecorder } from './request/outcomes.js';
import { type CanaryState, decideRoute } from './request/route-decision.js';
import { stickyKeyOf } from './request/sticky-key.js';
import { normalizeRest, requestIdOf, resolveTarget } from './request/target.js';
import { MAX_SHADOW_ANSWER_BYTES, type ShadowMirror } from './shadow/mirror.js';
import type { CanaryTripper } from './split/trips.js';
import type { ProxyRecorder } from './telemetry/recorder.js';
import { BodyTooLargeError, prepareBody, type RequestBody } from './upstream/body.js';
import { Cancel } from './upstream/cancel.js';
import { AnswerCapture, type ForwardResult } from './upstream/forward.js';
import { REPLAY_BYTES } from './upstream/forward-h2.js';
import type { H2Sessions } from './upstream/h2-sessions.js';
import { requestHeadersForUpstream } from './upstream/headers.js';
import type { LatencyTracker } from './upstream/hedge.js';
import type { UpstreamPools } from './upstream/pools.js';
import { ReplayableBody } from './upstream/replayable-body.js';

export interface HandlerDeps {
  config: Readonly<ProxyConfig>;
  table: () => RouteTable;
  pools: UpstreamPools;
  /** Multiplexed sessions to `h2c://` upstreams. */
  h2: H2Sessions;
  /** Prometheus metrics (counters the request path bumps itself: diversions, budget, hedges). */
  metrics: ProxyRecorder;
  /** Every outcome goes here: metrics, analysed stats, hedge latency, the trip, the prediction log. */
  outcomes: OutcomeRecorder;
  logger: Logger;
  /** The local fast trip for grossly failing canaries. */
  trips: CanaryTripper;
  /** The baseline's live latency, for "auto" hedging. */
  latency: LatencyTracker;
  /** Shadow traffic for canaries in their shadow phase. */
  shadow: ShadowMirror;
}

const isH2c = (url: string) => url.startsWith('h2c:');
const CLOSE = { connection: 'close' };
const FORCED = { 'x-canary-forced': 'true' };
// Shared, never written: most requests have no route settings and hand out no cookie.
const NO_SETTINGS: RouteSettings = Object.freeze({});
const NO_COOKIE: Record<string, string> = Object.freeze({});

/** The proxy's own error: a gRPC status for a gRPC client (which cannot read an error page), else JSON. */
function answerError(
  res: ClientAnswer,
  grpc: boolean,
  code: ErrorCode,
  message: string,
  extra?: Record<string, string>,
): void {
  if (grpc) sendGrpcError(res, code, message, extra);
  else sendHttpError(res as ServerResponse, code, message, extra);
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');
/** The prediction log's input hash: of a held body, or null for a streamed one (never read whole). */
const inputSha256Of = (body: RequestBody): string | null =>
  body === null ? EMPTY_SHA256 : Buffer.isBuffer(body) ? createHash('sha256').update(body).digest('hex') : null;

/**
 * The data-plane request path, a straight line: resolve the deployment → decide the route
 * (pure: the split's pick, a forced variant, a tripped canary, the in-flight cap) → plan the
 * body (held for a resend or shadow, within the budget) → forward (a canary request with the
 * baseline as its safety net: retry, hedge) → record (one recorder for every sink). No I/O
 * besides the upstream call.
 */
export function createRequestHandler(deps: HandlerDeps) {
  const { config, pools, metrics, outcomes, logger, trips, shadow, h2 } = deps;
  const inFlight = new CanaryInFlight();
  const held = new HeldBodies();
  const net = { metrics, outcomes, latency: deps.latency, inFlight };
  const bodyLimits = { maxBytes: config.maxBodyBytes, bufferBytes: config.bufferBodyBytes };
  const canaryState: CanaryState = {
    tripped: (deployment, version) => trips.isTripped(deployment, version),
    inFlight: (deployment) => inFlight.get(deployment),
    inFlightCap: config.upstreamConnections,
  };

  return async function handle(req: ClientRequest, res: ClientAnswer): Promise<void> {
    const started = performance.now();
    // A gRPC client reads errors from grpc-status, never from an HTTP error page. (A gRPC call on
    // the core HTTP/2 path is answered into its stream; every other answer is a ServerResponse.)
    const grpc = res instanceof GrpcCallResponse || isGrpcContentType(req.headers['content-type']);
    // Gateway mode: a gRPC client cannot add a path prefix, so it may name the deployment in metadata.
    const named = config.deployment ? undefined : req.headers['x-canary-deployment'];
    let target: { deployment: string; path: string } | null;
    const namedByHeader = typeof named === 'string' && req.url?.[0] === '/';
    if (namedByHeader) {
      const path = normalizeRest(req.url);
      if (path === null) return answerError(res, grpc, 'BAD_REQUEST_TARGET', 'the path climbs out of the deployment');
      target = { deployment: named, path };
    } else target = resolveTarget(req.url, config.deployment);
    if (!target)
      return answerError(
        res,
        grpc,
        'BAD_REQUEST_TARGET',
        `cannot parse request target ${JSON.stringify(req.url?.slice(0, 200))}, or its dot-segments leave the deployment`,
      );
    const table = deps.table();
    const route = table.deployments[target.deployment];
    if (!route)
      return answerError(
        res,
        grpc,
        'UNKNOWN_DEPLOYMENT',
        `no route for deployment ${JSON.stringify(target.deployment)}`,
      );
    const settings = route.settings ?? NO_SETTINGS;
    const method = req.method ?? 'GET';

    // Routed by x-canary-key, or by the deployment's sticky cookie (a new one is handed out).
    const sticky = stickyKeyOf(route, req.headers, req);
    const cookie: Record<string, string> = sticky.setCookie ? { 'set-cookie': sticky.setCookie } : NO_COOKIE;
    const decision = decideRoute(route, req.headers, canaryState, sticky.key);
    const { role, upstream, forced } = decision;
    if (decision.diverted) metrics.canaryDiverted.labels(route.name, decision.diverted).inc();
    if (decision.analysed) outcomes.routed(route.name, upstream.version);
    const requestId = requestIdOf(req.headers['x-request-id']);
    // Retries, hedges and shadows send a request twice: only for methods the deployment says are
    // safe (the noise floor sends a shadowed request to the baseline twice).
    // A gRPC method is named by its path (/package.Service/Method) and is only sent twice when the
    // deployment lists it (or "*"): a streaming call cannot be held for a second send.
    const repeatable = grpc
      ? !!settings.retryMethods && (settings.retryMethods.includes('*') || settings.retryMethods.includes(target.path))
      : !settings.retryMethods || settings.retryMethods.includes(method);
    if (grpc && !isH2c(upstream.url))
      return answerError(
        res,
        grpc,
        'PROTOCOL_MISMATCH',
        `${role} ${upstream.version} is served at ${upstreamParts(upstream.url).origin} (HTTP/1.1); a gRPC call needs an h2c:// model server URL`,
        variantHeaders(role, upstream.version, requestId, cookie),
      );
    const plan = planBody({
      wantsSafetyNet: role === 'canary' && !forced && route.retryCanaryOnBaseline !== false && repeatable,
      shadowSampled: role === 'baseline' && decision.analysed && repeatable && shadow.sampled(route),
      declared: Number(req.headers['content-length'] ?? 0) || 0,
      bufferBodyBytes: config.bufferBodyBytes,
      bufferBudgetBytes: config.bufferBudgetBytes,
      heldBytes: held.bytes,
    });
    if (plan.shadow === 'drop') shadow.drop(route);
    if (plan.overBudget) metrics.bufferBudgetExceeded.inc();
    let body: RequestBody;
    try {
      const pending = prepareBody(req, bodyLimits, plan.hold);
      body = pending instanceof Promise ? await pending : pending;
    } catch (err) {
      if (err instanceof BodyTooLargeError)
        return answerError(
          res,
          grpc,
          'BODY_TOO_LARGE',
          err.message,
          variantHeaders(role, upstream.version, requestId, cookie, CLOSE),
        );
      return; // the client aborted while sending its body
    }
    // Gateway mode: the model learns where the client's paths begin, and its redirects are mapped back.
    // (Deployment names are URL-safe: the route table refuses others.) A request that named its
    // deployment in a header has no prefix: its paths begin at the root, as the model's do.
    const gatewayPrefix = config.deployment || namedByHeader ? null : `/${route.name}`;
    const headers = requestHeadersForUpstream(
      req.headersDistinct ?? req.headers,
      requestId,
      req.socket.remoteAddress,
      config.trustProxy,
      gatewayPrefix,
    );
    // A gRPC call is only sent a second time to a baseline that can take it (h2c).
    const resendable = plan.hold && (body === null || Buffer.isBuffer(body)) && (!grpc || isH2c(route.baseline.url));
    // A gRPC call that is not held (a streaming call cannot be) is still retried, not hedged: its
    // body is kept as it streams while small and unanswered, so a canary failing before any
    // message is retried on the baseline (unary calls' default safety net; like gRPC's own retry
    // policy, never once an answer reached the client). Every streamed gRPC body is read through
    // a ReplayableBody, which also holds it to the body limit.
    const grpcRetry =
      grpc && role === 'canary' && !forced && route.retryCanaryOnBaseline !== false && isH2c(route.baseline.url);
    const replay =
      grpc && body instanceof Readable ? new ReplayableBody(body, REPLAY_BYTES, config.maxBodyBytes) : null;
    const resend = { hedge: resendable, retry: resendable || grpcRetry, replay };
    const release = held.take(resendable && Buffer.isBuffer(body) ? body.length : 0);
    let inputSha256: string | null | undefined; // hashed once, when a shadow or the prediction log needs it
    let compareShadow: ((baseline: ReturnType<AnswerCapture['answer']>) => void) | null = null;
    let capture: AnswerCapture | undefined;
    if (plan.shadow === 'start') {
      if (resendable && (body === null || (body as Buffer).length <= config.bufferBodyBytes)) {
        inputSha256 = inputSha256Of(body);
        const copy = {
          method,
          path: target.path,
          headers,
          body: body as Buffer | null,
          requestId,
          inputSha256: inputSha256!,
        };
        compareShadow = shadow.start(route, copy);
        if (compareShadow) capture = new AnswerCapture(MAX_SHADOW_ANSWER_BYTES);
      } else shadow.drop(route);
    }
    // A client that goes away before the answer is complete aborts the upstream requests at
    // once, so the model server stops working for nobody.
    const client = new Cancel();
    res.once('close', () => {
      if (!res.writableFinished) client.cancel('client');
    });

    const attempts = new Attempts(
      pools,
      h2,
      {
        method,
        path: target.path,
        headers,
        body,
        replay,
        capture,
        gatewayPrefix,
        headersTimeoutMs: settings.headersTimeoutMs ?? config.upstreamTimeoutMs,
        bodyTimeoutMs: settings.idleTimeoutMs ?? config.upstreamBodyTimeoutMs,
        requestId,
        cookie,
        grpcOutcomes: grpcOutcomesFor(settings.grpcModelErrors),
      },
      res,
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
        } = await canaryRequest(net, route, upstream, resend, attempts, client, table.version, decision.keyGroup));
      } else {
        const t0 = performance.now();
        final = await attempts.send(upstream, role, client, false, forced ? FORCED : undefined);
        outcomes.attempt({
          deployment: route.name,
          upstream,
          role,
          kind: forced ? 'forced' : decision.analysed ? 'routed' : 'diverted',
          outcome: final.outcome,
          latencyMs: performance.now() - t0,
          ownBodyLimit: isOwnBodyTooLarge(final),
          stream: final.stream,
          grpc: final.grpc,
          keyGroup: decision.analysed ? decision.keyGroup : undefined,
        });
      }
    } finally {
      release();
    }
    // The shadow compares with the answer the user got, when the user got a whole one.
    compareShadow?.(
      final.responded && (final.outcome === 'success' || final.outcome === 'client_error') ? capture!.answer() : null,
    );
    if (final.outcome !== 'aborted' && !forced && outcomes.logsPredictions) {
      if (inputSha256 === undefined) inputSha256 = inputSha256Of(body);
      outcomes.answered({
        requestId,
        deployment: route.name,
        version: finalUpstream.version,
        role: finalRole,
        inputSha256,
        outcome: final.outcome,
        latencyMs: performance.now() - started,
        at: Date.now(),
      });
    }
    if (!final.responded && final.outcome !== 'aborted') {
      if (final.error instanceof BodyTooLargeError)
        return answerError(
          res,
          grpc,
          'BODY_TOO_LARGE',
          final.error.message,
          variantHeaders(role, upstream.version, requestId, cookie, CLOSE),
        );
      const code = FAILURE_TO_ERROR[final.outcome] ?? 'UPSTREAM_BAD_RESPONSE';
      logger.debug(
        { deployment: route.name, version: finalUpstream.version, err: final.error?.message },
        'upstream failed',
      );
      answerError(
        res,
        grpc,
        code,
        `${finalRole} ${finalUpstream.version}: ${final.error?.message ?? 'upstream failed'}`,
        variantHeaders(finalRole, finalUpstream.version, requestId, cookie),
      );
    }
  };
}

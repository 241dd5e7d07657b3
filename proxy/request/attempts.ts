import type { ServerResponse } from 'node:http';
import { type Role, type Upstream, upstreamParts } from '../contract/route-table.js';
import type { GrpcOutcomes } from '../grpc/status.js';
import type { ClientAnswer } from '../protocol/client-exchange.js';
import type { RequestBody } from '../upstream/body.js';
import type { Cancel } from '../upstream/cancel.js';
import { type AnswerCapture, type ForwardResult, forward } from '../upstream/forward.js';
import { forwardH2 } from '../upstream/forward-h2.js';
import type { H2Sessions } from '../upstream/h2-sessions.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { ReplayableBody } from '../upstream/replayable-body.js';

/** One request as every attempt sends it, and what each attempt adds to the client's answer. */
export interface AttemptRequest {
  method: string;
  /** The path below the deployment (the upstream URL's own path prefix goes before it). */
  path: string;
  headers: Record<string, string | string[]>;
  body: RequestBody;
  /** A streamed gRPC body, kept while small so a later attempt can send it again. */
  replay: ReplayableBody | null;
  /** The baseline's answer is copied here for the shadow to compare with. */
  capture: AnswerCapture | undefined;
  /** Gateway mode: `/{deployment}`, where the client's paths begin (Location is mapped back into it). */
  gatewayPrefix: string | null;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  requestId: string;
  /** A sticky cookie handed out with this answer. */
  cookie: Record<string, string>;
  grpcOutcomes: GrpcOutcomes;
}

/** The headers that tell a client which version answered: on its answers and on the proxy's own errors. */
export function variantHeaders(
  role: Role,
  version: string,
  requestId: string,
  cookie: Record<string, string>,
  extra?: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {
    'x-canary-variant': role,
    'x-canary-version': version,
    'x-request-id': requestId,
  };
  for (const name in cookie) out[name] = cookie[name];
  for (const name in extra) out[name] = extra[name];
  return out;
}

const NO_EXTRA: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * The upstream attempts of one request: each sends the same request to one version, over
 * HTTP/1.1 (its pool) or HTTP/2 (its `h2c://` session), and streams the answer into the client's.
 * One object per request rather than a closure: the safety net calls it once per attempt.
 */
export class Attempts {
  constructor(
    private readonly pools: UpstreamPools,
    private readonly h2: H2Sessions,
    private readonly request: AttemptRequest,
    private readonly res: ClientAnswer,
  ) {}

  /**
   * Sends the request to `to` as `as`; `discardServerErrors` drops a model error that comes
   * before any byte reached the client (the caller retries it), `claim` races it (hedge).
   */
  send(
    to: Upstream,
    as: Role,
    signal: Cancel,
    discardServerErrors: boolean,
    extra: Record<string, string> = NO_EXTRA,
    claim?: () => boolean,
  ): Promise<ForwardResult> {
    const r = this.request;
    const { origin, prefix } = upstreamParts(to.url);
    const up = {
      method: r.method,
      path: prefix + r.path,
      headers: r.headers,
      body: r.body,
      replay: r.replay ?? undefined,
      signal,
      capture: as === 'baseline' ? r.capture : undefined,
      relocation: r.gatewayPrefix === null ? undefined : { deploymentPrefix: r.gatewayPrefix, upstreamUrl: to.url },
      headersTimeoutMs: r.headersTimeoutMs,
      bodyTimeoutMs: r.bodyTimeoutMs,
    };
    const ours = variantHeaders(as, to.version, r.requestId, r.cookie, extra);
    if (origin.startsWith('h2c:'))
      return forwardH2(this.h2, origin, up, this.res, ours, discardServerErrors, claim, r.grpcOutcomes);
    // Only a gRPC call is answered into a core HTTP/2 stream, and it never goes to an HTTP/1.1
    // model server (refused before, and never sent there a second time).
    return forward(this.pools.get(origin), up, this.res as ServerResponse, ours, discardServerErrors, claim);
  }
}

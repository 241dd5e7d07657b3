import http2, { type IncomingHttpHeaders } from 'node:http2';
import { performance } from 'node:perf_hooks';
import { isModelError, type Outcome } from '../contract/stats.js';
import { GrpcMessageMeter } from '../grpc/message-meter.js';
import {
  DEFAULT_GRPC_OUTCOMES,
  type GrpcOutcomes,
  grpcCodeForHttpStatus,
  isGrpcContentType,
  parseGrpcStatus,
} from '../grpc/status.js';
import type { ClientAnswer } from '../protocol/client-exchange.js';
import type { StreamEnd } from '../stream/meter.js';
import { BodyTooLargeError } from './body.js';
import { classifyError, classifyStatus, type ForwardResult, type UpstreamRequest } from './forward.js';
import type { H2Sessions } from './h2-sessions.js';
import { headersForClient, trailersForClient } from './headers.js';
import { type BodyOwner, ReplayableBody } from './replayable-body.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
/** Methods node's HTTP/2 client sends a body for unless told otherwise. */
const BODY_BY_DEFAULT = new Set(['POST', 'PUT', 'PATCH']);
/** A streamed request body is kept up to this size, to resend it while no answer reached the client. */
export const REPLAY_BYTES = 1 << 20;

/** `h2c://host:port` → `host:port`, parsed once per origin (origins are the route table's: few). */
const AUTHORITIES = new Map<string, string>();
function authorityOf(origin: string): string {
  let a = AUTHORITIES.get(origin);
  if (a === undefined) {
    a = new URL(origin).host;
    if (AUTHORITIES.size > 10_000) AUTHORITIES.clear();
    AUTHORITIES.set(origin, a);
  }
  return a;
}

/** How a gRPC stream ended, from its call's result. */
function streamEnd(r: ForwardResult): StreamEnd {
  if (r.outcome === 'aborted') return 'client_gone';
  if (r.error) return 'cut'; // reset, lost or stalled before its status
  return isModelError(r.outcome) ? 'error_event' : 'complete';
}

/** What an HTTP/2 answer ended as: the gRPC status when it is a gRPC call, else the HTTP status's outcome. */
export function h2Outcome(
  status: number,
  grpc: boolean,
  grpcStatus: number | null,
  outcomes: GrpcOutcomes,
): { outcome: Outcome; code?: number } {
  if (!grpc) return { outcome: classifyStatus(status) };
  const code = grpcStatus ?? grpcCodeForHttpStatus(status);
  return { outcome: outcomes.outcome(code), code };
}

/**
 * Sends one request to an `h2c://` upstream on its multiplexed session and streams the answer
 * into `res` (an HTTP/1.1 or HTTP/2 client), with flow control both ways: the upstream stream
 * pauses while the client is not draining, and a streamed request body is written with its
 * backpressure (ReplayableBody). The request goes as it came (`:path`, metadata, `grpc-timeout`, `te: trailers`);
 * the answer's trailers reach the client unchanged.
 *
 * A gRPC call's outcome is its `grpc-status` (trailers, or the headers of a Trailers-Only
 * answer); a reset or a lost connection before the status is the model's failure. When the call
 * may still be retried or raced (`discardServerErrors` while its body can be sent again,
 * `claim`), the answer's headers are held until its first message or its status, so a model
 * error that comes before any message is dropped and the caller can resend the call elsewhere;
 * headers are only held once the client has sent its whole request (a bidi call whose client
 * waits for the server's metadata is never stalled). Never throws.
 */
export function forwardH2(
  sessions: H2Sessions,
  origin: string,
  up: UpstreamRequest,
  res: ClientAnswer,
  extraHeaders: Record<string, string>,
  discardServerErrors: boolean,
  claim?: () => boolean,
  grpcOutcomes: GrpcOutcomes = DEFAULT_GRPC_OUTCOMES,
): Promise<ForwardResult> {
  return new Promise<ForwardResult>((resolve) => {
    const call = new H2Call(sessions, origin, up, res, extraHeaders, discardServerErrors, claim, grpcOutcomes, resolve);
    const signal = up.signal;
    if (signal?.aborted) return call.cancelled();
    signal?.on('abort', call.onCancel); // emitted once; `on` spares a once-wrapper per call
    call.send(1);
  });
}

/** The call an upstream stream belongs to (its listeners are shared by every call, not made per call). */
const kCall = Symbol('h2 call');
type UpstreamStream = http2.ClientHttp2Stream & { [kCall]: H2Call };

/**
 * One call's state, from the first send to its result. The stream's listeners are module
 * functions that find the call on the stream: the gRPC path makes no closures per call.
 */
class H2Call implements BodyOwner {
  statusCode: number | null = null;
  responded = false;
  dropped = false;
  settled = false;
  grpc: boolean;
  grpcStatus: number | null = null;
  /** An answer's headers held until its first message or its status (it may still be dropped). */
  held: IncomingHttpHeaders | null = null;
  headersTimer: NodeJS.Timeout | null = null;
  stream: UpstreamStream | null = null;
  /** The current stream was refused unprocessed and may be sent again on a fresh one. */
  replayable = false;
  replays = 0;
  readonly startedAt = performance.now();
  /** The gRPC answer's messages, as they reach the client. */
  meter: GrpcMessageMeter | null = null;
  readonly streamed: ReplayableBody | null;
  /** Bound once (a class field's arrow would be a named closure per call under tsx). */
  readonly onCancel: () => void;

  constructor(
    private readonly sessions: H2Sessions,
    private readonly origin: string,
    readonly up: UpstreamRequest,
    readonly res: ClientAnswer,
    private readonly extraHeaders: Record<string, string>,
    readonly discardServerErrors: boolean,
    readonly claim: (() => boolean) | undefined,
    readonly grpcOutcomes: GrpcOutcomes,
    private readonly resolve: (r: ForwardResult) => void,
  ) {
    this.onCancel = this.cancelled.bind(this);
    this.grpc = isGrpcContentType(up.headers['content-type']);
    this.streamed =
      up.replay ?? (up.body && !Buffer.isBuffer(up.body) ? new ReplayableBody(up.body, REPLAY_BYTES) : null);
  }

  /** The body can be sent again from its start (by this call, or by the caller's next attempt). */
  resendable(): boolean {
    return this.streamed === null || this.streamed.replayable;
  }
  /** The client has sent all of its request. */
  requestDone(): boolean {
    return this.streamed === null || this.streamed.ended;
  }
  /** Events of an earlier stream of this call (refused and sent again), or of a settled call, are ignored. */
  current(s: http2.ClientHttp2Stream): boolean {
    return this.stream === s && !this.settled;
  }
  /** The server refused the stream unprocessed (RST_STREAM REFUSED_STREAM, as after GOAWAY): safe to send again. */
  refused(s: http2.ClientHttp2Stream): boolean {
    return this.statusCode === null && s.rstCode === NGHTTP2_REFUSED_STREAM && this.replayable;
  }

  settle(r: ForwardResult): void {
    if (this.settled) return;
    this.settled = true;
    if (this.meter) r.stream = this.meter.summary(streamEnd(r)) ?? undefined;
    if (this.headersTimer) clearTimeout(this.headersTimer);
    this.up.signal?.removeListener('abort', this.onCancel);
    // A call cut short (failed, dropped, cancelled) is reset; one the server ended is left to
    // close by itself: an RST_STREAM for a stream the server already closed counts against
    // the session's invalid-frame limit, and a node server drops the whole session past it.
    const s = this.stream;
    if (s && !s.closed && !s.readableEnded) s.close(NGHTTP2_CANCEL);
    this.resolve(r);
  }

  failed(err: Error & { code?: string }) {
    const { statusCode, responded } = this;
    if (err instanceof BodyTooLargeError)
      return this.settle({ outcome: 'client_error', statusCode: 413, responded, error: err });
    if (this.up.signal?.aborted) return this.settle({ outcome: 'aborted', statusCode, responded, error: err });
    if (responded && !this.res.destroyed) this.res.destroy();
    this.settle({ outcome: classifyError(err), statusCode, responded, error: err });
  }

  /** Reading the client's body failed, or it grew past the limit (BodyOwner). */
  bodyFailed(err: Error): void {
    if (!this.settled) this.failed(err);
  }

  cancelled(): void {
    this.failed(Object.assign(new Error(`cancelled: ${this.up.signal!.why}`), { code: 'UND_ERR_ABORTED' }));
  }

  /** Sends the held answer's headers to the client; false when this answer is dropped. */
  commit(headers: IncomingHttpHeaders, endsHere: boolean): boolean {
    if (this.claim && !this.claim()) {
      this.dropped = true;
      return false;
    }
    const { res, up } = this;
    this.responded = true;
    this.streamed?.release();
    if (up.capture) up.capture.status = this.statusCode!;
    const out = headersForClient(headers, this.extraHeaders, up.relocation);
    if (endsHere) {
      // Trailers-Only (the status is in the headers): one HEADERS frame, ended, as the model sent it.
      res.statusCode = this.statusCode!;
      for (const name in out) res.setHeader(name, out[name]);
    } else {
      res.writeHead(this.statusCode!, out);
      if (this.grpc) this.meter = new GrpcMessageMeter(this.startedAt);
    }
    return true;
  }

  /** Commits the held headers, if any; false when the answer is dropped instead. */
  commitHeld(): boolean {
    const h = this.held;
    if (!h) return true;
    this.held = null;
    return this.commit(h, false);
  }

  finish(): void {
    if (!this.dropped) this.res.end();
    const { outcome, code } = h2Outcome(this.statusCode!, this.grpc, this.grpcStatus, this.grpcOutcomes);
    this.settle({
      outcome,
      statusCode: this.statusCode,
      responded: this.responded,
      grpc: code === undefined ? undefined : { method: this.up.path, code },
    });
  }

  /** Opens a stream on the origin's session and sends the request; `replays` fresh streams may follow a refusal. */
  send(replays: number): void {
    const { up } = this;
    let session: http2.ClientHttp2Session;
    try {
      session = this.sessions.get(this.origin);
    } catch (err) {
      this.failed(err as Error);
      return;
    }
    this.replays = replays;
    this.replayable = replays > 0 && this.resendable();
    // Copied key by key: an object spread of a header object is some ten times slower here.
    const requestHeaders: http2.OutgoingHttpHeaders = {
      ':method': up.method,
      ':path': up.path,
      ':authority': authorityOf(this.origin),
      ':scheme': 'http',
    };
    for (const name in up.headers) requestHeaders[name] = up.headers[name];
    if (this.grpc) requestHeaders.te = 'trailers';
    let s: UpstreamStream;
    try {
      // No options where node's default is right (a body follows a POST, PUT or PATCH): its copy and
      // checks of an options object cost more than the rest of the call on the gRPC path.
      s = (
        up.body !== null && BODY_BY_DEFAULT.has(up.method)
          ? session.request(requestHeaders)
          : session.request(requestHeaders, { endStream: up.body === null })
      ) as UpstreamStream;
    } catch (err) {
      // The session got GOAWAY or closed a moment ago: a fresh one takes the call.
      if (this.replayable) {
        this.send(replays - 1);
        return;
      }
      this.failed(Object.assign(err as Error, { code: 'UND_ERR_SOCKET' }));
      return;
    }
    s[kCall] = this;
    this.stream = s;
    if (this.headersTimer) clearTimeout(this.headersTimer);
    this.headersTimer = setTimeout(headersTimedOut, up.headersTimeoutMs, this);
    if (Buffer.isBuffer(up.body)) s.end(up.body);
    else this.streamed?.sendTo(s, this);
    s.on('response', onResponse);
    s.on('data', onData);
    s.on('trailers', onTrailers);
    s.on('end', onEnd);
    s.on('close', onClose);
    s.on('error', onError);
  }
}

function headersTimedOut(call: H2Call): void {
  call.failed(Object.assign(new Error('no response headers in time'), { code: 'UND_ERR_HEADERS_TIMEOUT' }));
}

function onBodyStalled(this: UpstreamStream): void {
  const call = this[kCall];
  if (call.current(this)) call.failed(Object.assign(new Error('the answer stalled'), { code: 'UND_ERR_BODY_TIMEOUT' }));
}

function onResponse(this: UpstreamStream, headers: IncomingHttpHeaders, flags: number): void {
  const call = this[kCall];
  if (!call.current(this)) return;
  const status = Number(headers[':status']);
  if (status < 200) return;
  if (call.headersTimer) clearTimeout(call.headersTimer);
  call.headersTimer = null;
  call.statusCode = status;
  call.grpc ||= isGrpcContentType(headers['content-type']);
  this.setTimeout(call.up.bodyTimeoutMs, onBodyStalled);
  const endsHere = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
  if (call.grpc && endsHere) call.grpcStatus = parseGrpcStatus(headers['grpc-status']);
  const { outcome } = h2Outcome(status, call.grpc, call.grpcStatus, call.grpcOutcomes);
  const modelFailedAlready = endsHere ? outcome !== 'success' && outcome !== 'client_error' : status >= 500;
  const mayDrop = call.discardServerErrors && call.resendable();
  if (mayDrop && modelFailedAlready) {
    call.dropped = true;
    return;
  }
  // A gRPC answer that may still be dropped waits for its first message or its status.
  if (call.grpc && !endsHere && (mayDrop || call.claim) && call.requestDone()) call.held = headers;
  else call.commit(headers, endsHere);
}

function onData(this: UpstreamStream, chunk: Buffer): void {
  const call = this[kCall];
  if (!call.current(this) || !call.commitHeld()) return;
  const { res } = call;
  if (call.dropped || res.destroyed) return;
  call.up.capture?.add(chunk);
  call.meter?.push(chunk, performance.now());
  if (!res.write(chunk)) {
    this.pause();
    res.once('drain', () => this.resume());
  }
}

function onTrailers(this: UpstreamStream, trailers: IncomingHttpHeaders): void {
  const call = this[kCall];
  if (!call.current(this)) return;
  call.grpcStatus = parseGrpcStatus(trailers['grpc-status']);
  if (call.held) {
    const { outcome } = h2Outcome(call.statusCode!, call.grpc, call.grpcStatus, call.grpcOutcomes);
    if (call.discardServerErrors && call.resendable() && outcome !== 'success' && outcome !== 'client_error') {
      call.held = null;
      call.dropped = true;
      return;
    }
    if (!call.commitHeld()) return;
  }
  if (!call.dropped) call.res.addTrailers(trailersForClient(trailers));
}

function onEnd(this: UpstreamStream): void {
  const call = this[kCall];
  if (!call.current(this)) return;
  if (call.statusCode === null) return; // reset before any answer: 'close' reports it
  call.commitHeld();
  call.finish();
}

function onClose(this: UpstreamStream) {
  const call = this[kCall];
  if (!call.current(this)) return;
  if (call.refused(this)) return call.send(call.replays - 1);
  if (call.statusCode !== null && this.rstCode === http2.constants.NGHTTP2_NO_ERROR) return call.finish();
  call.failed(
    Object.assign(new Error(`the model server reset the stream (code ${this.rstCode})`), { code: 'ECONNRESET' }),
  );
}

function onError(this: UpstreamStream, err: Error & { code?: string }) {
  const call = this[kCall];
  if (!call.current(this)) return;
  if (call.refused(this)) return call.send(call.replays - 1);
  call.failed(Object.assign(err, { code: err.code === 'ERR_HTTP2_STREAM_ERROR' ? 'ECONNRESET' : err.code }));
}

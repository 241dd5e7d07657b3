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
import { ReplayableBody } from './replayable-body.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
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
 * pauses while the client is not draining, and a streamed request body is piped with its
 * backpressure. The request goes as it came (`:path`, metadata, `grpc-timeout`, `te: trailers`);
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
    let statusCode: number | null = null;
    let responded = false;
    let dropped = false;
    let settled = false;
    let grpc = isGrpcContentType(up.headers['content-type']);
    let grpcStatus: number | null = null;
    let held: IncomingHttpHeaders | null = null;
    let headersTimer: NodeJS.Timeout | null = null;
    const signal = up.signal;
    let stream: http2.ClientHttp2Stream | null = null;
    const startedAt = performance.now();
    /** The gRPC answer's messages, as they reach the client. */
    let meter: GrpcMessageMeter | null = null;

    const settle = (r: ForwardResult) => {
      if (settled) return;
      settled = true;
      if (meter) r.stream = meter.summary(streamEnd(r)) ?? undefined;
      if (headersTimer) clearTimeout(headersTimer);
      signal?.removeListener('abort', onCancel);
      // A call cut short (failed, dropped, cancelled) is reset; one the server ended is left to
      // close by itself: an RST_STREAM for a stream the server already closed counts against
      // the session's invalid-frame limit, and a node server drops the whole session past it.
      if (stream && !stream.closed && !stream.readableEnded) stream.close(NGHTTP2_CANCEL);
      resolve(r);
    };
    const failed = (err: Error & { code?: string }) => {
      if (err instanceof BodyTooLargeError)
        return settle({ outcome: 'client_error', statusCode: 413, responded, error: err });
      if (signal?.aborted) return settle({ outcome: 'aborted', statusCode, responded, error: err });
      if (responded && !res.destroyed) res.destroy();
      settle({ outcome: classifyError(err), statusCode, responded, error: err });
    };
    const onCancel = () => failed(Object.assign(new Error(`cancelled: ${signal!.why}`), { code: 'UND_ERR_ABORTED' }));
    if (signal?.aborted) return onCancel();
    signal?.once('abort', onCancel);

    /** Sends the held answer's headers to the client; false when this answer is dropped. */
    const commit = (headers: IncomingHttpHeaders, endsHere: boolean): boolean => {
      if (claim && !claim()) {
        dropped = true;
        return false;
      }
      responded = true;
      streamed?.release();
      if (up.capture) up.capture.status = statusCode!;
      const out = headersForClient(headers, extraHeaders, up.relocation);
      if (endsHere) {
        // Trailers-Only (the status is in the headers): one HEADERS frame, ended, as the model sent it.
        res.statusCode = statusCode!;
        for (const name in out) res.setHeader(name, out[name]);
      } else {
        res.writeHead(statusCode!, out);
        if (grpc) meter = new GrpcMessageMeter(startedAt);
      }
      return true;
    };
    const finish = () => {
      if (!dropped) res.end();
      const { outcome, code } = h2Outcome(statusCode!, grpc, grpcStatus, grpcOutcomes);
      settle({ outcome, statusCode, responded, grpc: code === undefined ? undefined : { method: up.path, code } });
    };

    const streamed =
      up.replay ?? (up.body && !Buffer.isBuffer(up.body) ? new ReplayableBody(up.body, REPLAY_BYTES) : null);
    /** The body can be sent again from its start (by this call, or by the caller's next attempt). */
    const resendable = () => streamed === null || streamed.replayable;
    /** The client has sent all of its request. */
    const requestDone = () => streamed === null || streamed.ended;
    const send = (replays: number): void => {
      let session: http2.ClientHttp2Session;
      try {
        session = sessions.get(origin);
      } catch (err) {
        failed(err as Error);
        return;
      }
      const replayable = replays > 0 && resendable();
      const requestHeaders: http2.OutgoingHttpHeaders = {
        ...up.headers,
        ':method': up.method,
        ':path': up.path,
        ':authority': authorityOf(origin),
        ':scheme': 'http',
      };
      if (grpc) requestHeaders.te = 'trailers';
      try {
        stream = session.request(requestHeaders, { endStream: up.body === null });
      } catch (err) {
        // The session got GOAWAY or closed a moment ago: a fresh one takes the call.
        if (replayable) {
          send(replays - 1);
          return;
        }
        failed(Object.assign(err as Error, { code: 'UND_ERR_SOCKET' }));
        return;
      }
      const s = stream;
      const current = () => stream === s && !settled;
      /** The server refused the stream unprocessed (RST_STREAM REFUSED_STREAM, as after GOAWAY): safe to send again. */
      const refused = () => statusCode === null && s.rstCode === NGHTTP2_REFUSED_STREAM && replayable;
      if (headersTimer) clearTimeout(headersTimer);
      headersTimer = setTimeout(
        () => failed(Object.assign(new Error('no response headers in time'), { code: 'UND_ERR_HEADERS_TIMEOUT' })),
        up.headersTimeoutMs,
      );
      if (Buffer.isBuffer(up.body)) s.end(up.body);
      else streamed?.sendTo(s, (err) => current() && failed(err));

      s.on('response', (headers, flags) => {
        if (!current()) return;
        const status = Number(headers[':status']);
        if (status < 200) return;
        if (headersTimer) clearTimeout(headersTimer);
        headersTimer = null;
        statusCode = status;
        grpc ||= isGrpcContentType(headers['content-type']);
        s.setTimeout(up.bodyTimeoutMs, () =>
          failed(Object.assign(new Error('the answer stalled'), { code: 'UND_ERR_BODY_TIMEOUT' })),
        );
        const endsHere = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
        if (grpc && endsHere) grpcStatus = parseGrpcStatus(headers['grpc-status']);
        const { outcome } = h2Outcome(status, grpc, grpcStatus, grpcOutcomes);
        const modelFailedAlready = endsHere ? outcome !== 'success' && outcome !== 'client_error' : status >= 500;
        const mayDrop = discardServerErrors && resendable();
        if (mayDrop && modelFailedAlready) {
          dropped = true;
          return;
        }
        // A gRPC answer that may still be dropped waits for its first message or its status.
        if (grpc && !endsHere && (mayDrop || claim) && requestDone()) held = headers;
        else commit(headers, endsHere);
      });
      s.on('data', (chunk: Buffer) => {
        if (!current()) return;
        if (held) {
          const h = held;
          held = null;
          if (!commit(h, false)) return;
        }
        if (dropped || res.destroyed) return;
        up.capture?.add(chunk);
        meter?.push(chunk, performance.now());
        if (!res.write(chunk)) {
          s.pause();
          res.once('drain', () => s.resume());
        }
      });
      s.on('trailers', (trailers) => {
        if (!current()) return;
        grpcStatus = parseGrpcStatus(trailers['grpc-status']);
        if (held) {
          const h = held;
          held = null;
          const { outcome } = h2Outcome(statusCode!, grpc, grpcStatus, grpcOutcomes);
          if (discardServerErrors && resendable() && outcome !== 'success' && outcome !== 'client_error') {
            dropped = true;
            return;
          }
          if (!commit(h, false)) return;
        }
        if (!dropped) res.addTrailers(trailersForClient(trailers));
      });
      s.on('end', () => {
        if (!current()) return;
        if (statusCode === null) return; // reset before any answer: 'close' reports it
        if (held) {
          const h = held;
          held = null;
          if (!commit(h, false)) return finish();
        }
        finish();
      });
      s.on('close', () => {
        if (!current()) return;
        if (refused()) {
          send(replays - 1);
          return;
        }
        if (statusCode !== null && s.rstCode === http2.constants.NGHTTP2_NO_ERROR) return finish();
        failed(
          Object.assign(new Error(`the model server reset the stream (code ${s.rstCode})`), { code: 'ECONNRESET' }),
        );
      });
      s.on('error', (err: Error & { code?: string }) => {
        if (!current()) return;
        if (refused()) {
          send(replays - 1);
          return;
        }
        failed(Object.assign(err, { code: err.code === 'ERR_HTTP2_STREAM_ERROR' ? 'ECONNRESET' : err.code }));
      });
    };
    send(1);
  });
}

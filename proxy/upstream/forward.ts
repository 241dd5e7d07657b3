import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Pool } from 'undici';
import type { Outcome } from '../contract/stats.js';
import { StreamMeter, type StreamSummary } from '../stream/meter.js';
import type { GrpcCall } from '../telemetry/grpc-metrics.js';
import { BodyTooLargeError, type RequestBody } from './body.js';
import type { Cancel } from './cancel.js';
import { isHttp2, type Relocation, rawResponseHeadersForClient } from './headers.js';
import type { ReplayableBody } from './replayable-body.js';

export interface UpstreamRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: RequestBody;
  /** The streamed body, kept to be sent again by the next attempt (h2c:// upstreams only). */
  replay?: ReplayableBody;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Cancelled when the client goes away (or a hedge is lost): the model server sees its request end at once. */
  signal?: Cancel;
  /** Keeps a copy of the answer sent to the client (a shadow compares with it). */
  capture?: AnswerCapture;
  /** Gateway mode: Location and Content-Location rewritten into the deployment's prefix. */
  relocation?: Relocation;
}

/** A bounded copy of an answer as it streams to the client. */
export class AnswerCapture {
  status = 0;
  private chunks: Buffer[] = [];
  private size = 0;
  private over = false;
  constructor(private readonly maxBytes: number) {}

  add(chunk: Buffer): void {
    if (this.over) return;
    this.size += chunk.length;
    if (this.size > this.maxBytes) {
      this.over = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
  }

  /** The whole answer, or null when it was larger than the cap. */
  answer(): { status: number; body: Buffer } | null {
    return this.over || this.status === 0 ? null : { status: this.status, body: Buffer.concat(this.chunks) };
  }
}

export interface ForwardResult {
  outcome: Outcome;
  /** A gRPC call's method and status code (from its trailers, or from the HTTP status when it had none). */
  grpc?: GrpcCall;
  statusCode: number | null;
  /** true once anything was written to the client: no retry or error page is possible. */
  responded: boolean;
  error?: Error & { code?: string };
  /** A streamed answer (SSE or NDJSON): what was measured inside it. */
  stream?: StreamSummary;
}

export function classifyStatus(status: number): Outcome {
  if (status >= 500) return 'server_error';
  if (status >= 400) return 'client_error';
  return 'success';
}

/** Maps an undici/socket failure to an outcome; anything else means a broken response. */
export function classifyError(err: Error & { code?: string }): Outcome {
  switch (err.code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'timeout';
    case 'ECONNREFUSED':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAI_AGAIN':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return 'connection_error';
    // The request itself could not be sent as the client framed it: the client's problem.
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return 'client_error';
    default:
      return 'server_error';
  }
}

/**
 * Sends one request upstream and streams the answer straight into `res`, on undici's
 * dispatcher API with a handler of our own (the core under Pool.stream, without its per-request
 * `finished()` listeners and signal wiring). It gives the upstream's exact status line and raw
 * headers, so the client sees the reason phrase, header order and repeated headers as the
 * model sent them. When `discardServerErrors` is set, a 5xx answer is drained instead of sent,
 * so the caller can retry elsewhere; `claim` lets a racing attempt (a hedge) drop this answer.
 * Never throws: failures come back as an outcome.
 */
export function forward(
  pool: Pool,
  up: UpstreamRequest,
  res: ServerResponse,
  extraHeaders: Record<string, string>,
  discardServerErrors: boolean,
  /** When racing another attempt: called at response headers; false means the other won, so this answer is dropped. */
  claim?: () => boolean,
): Promise<ForwardResult> {
  return new Promise<ForwardResult>((resolve) => {
    let statusCode: number | null = null;
    let responded = false;
    let dropped = false;
    let settled = false;
    let abort: ((err: Error) => void) | null = null;
    let meter: StreamMeter | null = null;
    const startedAt = performance.now();
    const signal = up.signal;
    const onCancel = () => abort?.(signal!.reason!);
    const settle = (r: ForwardResult) => {
      if (settled) return;
      settled = true;
      signal?.removeListener('abort', onCancel);
      resolve(r);
    };
    const failed = (err: Error & { code?: string }) => {
      if (err instanceof BodyTooLargeError)
        return settle({ outcome: 'client_error', statusCode: 413, responded, error: err });
      // Our own cancel: the client went away, or the other attempt of a race won. (An error
      // the model reported inside its stream before the client left is still the model's.)
      if (signal?.aborted && err.code === 'UND_ERR_ABORTED') {
        const stream = meter?.finish('client_gone', performance.now());
        const outcome = stream?.end === 'error_event' ? 'server_error' : 'aborted';
        return settle({ outcome, statusCode, responded, error: err, stream });
      }
      // A model that stalls or drops the connection mid-stream is the model's failure, even though the client's answer is cut.
      const stream = meter?.finish('broken', performance.now());
      settle({ outcome: classifyError(err), statusCode, responded, error: err, stream });
    };
    if (signal?.aborted) return failed(signal.reason!);
    signal?.once('abort', onCancel);

    pool.dispatch(
      {
        method: up.method as 'GET',
        path: up.path,
        headers: up.headers,
        body: up.body,
        headersTimeout: up.headersTimeoutMs,
        bodyTimeout: up.bodyTimeoutMs,
      },
      {
        onConnect(abortRequest: (err: Error) => void) {
          if (signal?.aborted) return abortRequest(signal.reason!);
          abort = abortRequest;
        },
        onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string) {
          if (status < 200) return true; // 1xx (Expect was answered by the proxy itself)
          statusCode = status;
          if ((discardServerErrors && status >= 500) || (claim && !claim())) {
            dropped = true;
            return true;
          }
          responded = true;
          meter = StreamMeter.forAnswer(status, rawHeaders, startedAt);
          if (up.capture) up.capture.status = status;
          // Node's server would add "Keep-Alive: timeout=N" to every answer; the client gets the
          // model's headers and ours (x-canary-*), nothing else. (The connection stays keep-alive.)
          (res as unknown as { _defaultKeepAlive: boolean })._defaultKeepAlive = false;
          const headers = rawResponseHeadersForClient(rawHeaders, extraHeaders, up.relocation);
          // HTTP/2 has no reason phrase.
          if (isHttp2(res)) res.writeHead(status, headers);
          else res.writeHead(status, statusText, headers);
          res.on('drain', resume);
          return !res.writableNeedDrain;
        },
        onData(chunk: Buffer) {
          if (dropped) return true;
          up.capture?.add(chunk);
          if (res.destroyed) return true;
          // The client's copy is written first: measuring never delays a byte.
          const more = res.write(chunk);
          meter?.push(chunk, performance.now());
          return more;
        },
        onComplete() {
          if (!dropped) res.end();
          if (!meter) return settle({ outcome: classifyStatus(statusCode!), statusCode, responded });
          // A stream's outcome is how it ended: an error inside it or a cut is the model's failure.
          const stream = meter.finish('closed', performance.now());
          const outcome: Outcome =
            stream.end === 'error_event' ? 'server_error' : stream.end === 'cut' ? 'connection_error' : 'success';
          settle({ outcome, statusCode, responded, stream });
        },
        onError(err: Error & { code?: string }) {
          if (responded && !res.destroyed) res.destroy();
          failed(err);
        },
      } as never,
    );
  });
}

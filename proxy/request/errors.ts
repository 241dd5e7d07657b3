import type { ServerResponse } from 'node:http';
import { ERRORS, type ErrorCode, errorBody } from '../../common/errors.js';
import type { Outcome } from '../contract/stats.js';
import { encodeGrpcMessage, GRPC } from '../grpc/status.js';
import type { ClientAnswer } from '../protocol/client-exchange.js';
import { BodyTooLargeError } from '../upstream/body.js';
import type { ForwardResult } from '../upstream/forward.js';
import { isHttp2 } from '../upstream/headers.js';

/** An answer already under way cannot become an error: the client sees it cut instead. */
function cutIfStarted(res: ClientAnswer): boolean {
  if (!res.headersSent) return false;
  res.destroy();
  return true;
}

/** The proxy's own answers when no model answered: a JSON error with a stable code. */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  extra: Record<string, string> = {},
): void {
  if (cutIfStarted(res)) return;
  const body = errorBody(code, message);
  // HTTP/2 has no Connection header (the stream ends; the session stays).
  if (isHttp2(res)) delete extra.connection;
  res.writeHead(ERRORS[code].status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

/** The gRPC status a gRPC client gets for each of the proxy's own errors. */
const GRPC_FOR_ERROR: Partial<Record<ErrorCode, number>> = {
  UNKNOWN_DEPLOYMENT: GRPC.NOT_FOUND,
  BAD_REQUEST_TARGET: GRPC.INVALID_ARGUMENT,
  BODY_TOO_LARGE: GRPC.RESOURCE_EXHAUSTED,
  UPSTREAM_TIMEOUT: GRPC.DEADLINE_EXCEEDED,
  UPSTREAM_UNAVAILABLE: GRPC.UNAVAILABLE,
  UPSTREAM_BAD_RESPONSE: GRPC.UNAVAILABLE,
  PROTOCOL_MISMATCH: GRPC.UNIMPLEMENTED,
  REQUEST_TIMEOUT: GRPC.DEADLINE_EXCEEDED,
};

/**
 * The proxy's own errors for a gRPC client: a Trailers-Only answer (HTTP 200, the status in the
 * headers) that every gRPC library reads, with the stable code in `x-canary-error`.
 */
export function sendGrpcError(
  res: ClientAnswer,
  code: ErrorCode,
  message: string,
  extra: Record<string, string> = {},
): void {
  if (cutIfStarted(res)) return;
  const { connection: _, ...rest } = extra;
  res.statusCode = 200;
  res.setHeader('content-type', 'application/grpc');
  res.setHeader('grpc-status', String(GRPC_FOR_ERROR[code] ?? GRPC.UNKNOWN));
  res.setHeader('grpc-message', encodeGrpcMessage(`${code}: ${message}`));
  res.setHeader('x-canary-error', code);
  for (const name in rest) res.setHeader(name, rest[name]);
  res.end();
}

/** The error a client gets when the upstream failed before answering, by outcome. */
export const FAILURE_TO_ERROR: Partial<Record<Outcome, ErrorCode>> = {
  client_error: 'BAD_REQUEST_TARGET',
  timeout: 'UPSTREAM_TIMEOUT',
  connection_error: 'UPSTREAM_UNAVAILABLE',
  server_error: 'UPSTREAM_BAD_RESPONSE',
};

/** A 413 the proxy raised itself while streaming the client's body: nobody's model is involved. */
export const isOwnBodyTooLarge = (r: ForwardResult) => r.statusCode === 413 && r.error instanceof BodyTooLargeError;

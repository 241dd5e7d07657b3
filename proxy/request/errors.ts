import type { ServerResponse } from 'node:http';
import { ERRORS, type ErrorCode, errorBody } from '../../common/errors.js';
import type { Outcome } from '../contract/stats.js';
import { BodyTooLargeError } from '../upstream/body.js';
import type { ForwardResult } from '../upstream/forward.js';

/** The proxy's own answers when no model answered: a JSON error with a stable code. */

export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  extra: Record<string, string> = {},
): void {
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

/** The error a client gets when the upstream failed before answering, by outcome. */
export const FAILURE_TO_ERROR: Partial<Record<Outcome, ErrorCode>> = {
  client_error: 'BAD_REQUEST_TARGET',
  timeout: 'UPSTREAM_TIMEOUT',
  connection_error: 'UPSTREAM_UNAVAILABLE',
  server_error: 'UPSTREAM_BAD_RESPONSE',
};

/** A 413 the proxy raised itself while streaming the client's body: nobody's model is involved. */
export const isOwnBodyTooLarge = (r: ForwardResult) => r.statusCode === 413 && r.error instanceof BodyTooLargeError;

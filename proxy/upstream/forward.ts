import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import type { Pool } from 'undici';
import type { Outcome } from '../telemetry/stats.js';
import { BodyTooLargeError, type RequestBody } from './body.js';
import { responseHeadersForClient } from './headers.js';

export interface UpstreamRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: RequestBody;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export interface ForwardResult {
  outcome: Outcome;
  statusCode: number | null;
  /** true once anything was written to the client: no retry or error page is possible. */
  responded: boolean;
  error?: Error & { code?: string };
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
    case 'ECONNREFUSED': case 'ECONNRESET': case 'EPIPE': case 'ENOTFOUND': case 'EHOSTUNREACH':
    case 'ENETUNREACH': case 'EAI_AGAIN': case 'UND_ERR_SOCKET': case 'UND_ERR_CLOSED': case 'UND_ERR_DESTROYED':
      return 'connection_error';
    default:
      return 'server_error';
  }
}

const discard = () => new Writable({ write(_c, _e, cb) { cb(); } });

/**
 * Sends one request upstream with Pool.stream (about twice the throughput of
 * request + pipeline) and streams the answer straight into `res`.
 * When `discardServerErrors` is set, a 5xx answer is drained instead of sent, so the
 * caller can retry elsewhere. Never throws: failures come back as an outcome.
 */
export async function forward(
  pool: Pool, up: UpstreamRequest, res: ServerResponse,
  extraHeaders: Record<string, string>, discardServerErrors: boolean,
): Promise<ForwardResult> {
  let statusCode: number | null = null;
  let responded = false;
  try {
    await pool.stream(
      {
        method: up.method as 'GET', path: up.path, headers: up.headers, body: up.body,
        headersTimeout: up.headersTimeoutMs, bodyTimeout: up.bodyTimeoutMs,
      },
      ({ statusCode: status, headers }) => {
        statusCode = status;
        if (discardServerErrors && status >= 500) return discard();
        responded = true;
        res.writeHead(status, responseHeadersForClient(headers, extraHeaders));
        return res;
      },
    );
    return { outcome: classifyStatus(statusCode!), statusCode, responded };
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err instanceof BodyTooLargeError) return { outcome: 'client_error', statusCode: 413, responded, error: err };
    // The client went away mid-response: nothing to say about the model.
    if (responded && res.destroyed && !res.writableFinished) return { outcome: 'aborted', statusCode, responded, error: err };
    return { outcome: classifyError(err), statusCode, responded, error: err };
  }
}

import http2 from 'node:http2';
import { parseGrpcStatus } from '../grpc/status.js';
import type { H2Sessions } from './h2-sessions.js';

/** An answer read whole from an `h2c://` upstream (off the user's path: shadows). */
export interface BufferedH2Answer {
  status: number;
  /** The answer's bytes; null when they passed `maxBytes` (the call was cancelled there). */
  body: Buffer | null;
  /** grpc-status from the trailers or a Trailers-Only answer's headers. */
  grpcStatus: number | null;
}

/**
 * One request to an `h2c://` upstream on its multiplexed session, its answer read whole up to
 * `maxBytes`. Rejects with a code `classifyError` knows (reset, socket, cancelled).
 */
export function requestH2(
  sessions: H2Sessions,
  origin: string,
  req: { method: string; path: string; headers: Record<string, string | string[]>; body: Buffer | null },
  maxBytes: number,
  signal: AbortSignal,
): Promise<BufferedH2Answer> {
  return new Promise((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = sessions
        .get(origin)
        .request(
          { ...req.headers, ':method': req.method, ':path': req.path, ':authority': new URL(origin).host },
          { endStream: req.body === null, signal },
        );
    } catch (err) {
      return reject(Object.assign(err as Error, { code: 'UND_ERR_SOCKET' }));
    }
    if (req.body) stream.end(req.body);
    let status = 0;
    let grpcStatus: number | null = null;
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('response', (h) => {
      status = Number(h[':status']);
      grpcStatus = parseGrpcStatus(h['grpc-status']);
    });
    stream.on('trailers', (t) => {
      grpcStatus = parseGrpcStatus(t['grpc-status']);
    });
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= maxBytes) chunks.push(c);
      else {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        resolve({ status, body: null, grpcStatus });
      }
    });
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks), grpcStatus }));
    stream.on('close', () => {
      if (status === 0 || (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && size <= maxBytes))
        reject(Object.assign(new Error(`stream reset (code ${stream.rstCode})`), { code: 'ECONNRESET' }));
    });
    stream.on('error', (err: Error & { code?: string }) =>
      reject(Object.assign(err, { code: err.code === 'ERR_HTTP2_STREAM_ERROR' ? 'ECONNRESET' : err.code })),
    );
  });
}

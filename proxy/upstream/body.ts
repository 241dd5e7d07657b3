import { Readable } from 'node:stream';
import type { ClientRequest } from '../protocol/client-exchange.js';
import { GrpcCallRequest } from '../protocol/grpc-call.js';

export class BodyTooLargeError extends Error {
  readonly code = 'BODY_TOO_LARGE';
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`);
  }
}

/** What to send upstream: nothing, the whole body in memory, or a stream of it. */
export type RequestBody = null | Buffer | Readable;

export interface BodyLimits {
  /** Larger bodies are rejected with 413. */
  maxBytes: number;
  /** Bodies up to this size are buffered (faster and better p99 for small payloads). */
  bufferBytes: number;
}

/** The request's body as a stream (node's compatibility API keeps an HTTP/2 request's stream as `stream`). */
const h2StreamOf = (req: ClientRequest): { endAfterHeaders: boolean } | undefined =>
  req instanceof GrpcCallRequest ? req.stream : (req as unknown as { stream?: { endAfterHeaders: boolean } }).stream;
const bodyStreamOf = (req: ClientRequest): Readable => (req instanceof GrpcCallRequest ? req.stream : req);

function hasBody(req: ClientRequest, h2: { endAfterHeaders: boolean } | undefined): boolean {
  if (h2) return !h2.endAfterHeaders && req.headers['content-length'] !== '0';
  return (
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')
  );
}

/** Reads a body of known, small length in one go (the common prediction case). */
function bufferKnownLength(req: Readable, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length)));
    req.on('error', reject);
  });
}

/**
 * Prepares the request body (at once where nothing needs reading: no body, or one that streams
 * as it is, as a gRPC call's does). With `mustBuffer` (a retry may need to resend it) the whole
 * body is read into memory up to maxBytes; otherwise bodies above bufferBytes stream
 * through, still checked against maxBytes as they go. Throws BodyTooLargeError up front
 * when Content-Length already says too much.
 */
export function prepareBody(
  req: ClientRequest,
  limits: BodyLimits,
  mustBuffer: boolean,
): RequestBody | Promise<RequestBody> {
  const h2 = h2StreamOf(req);
  if (!hasBody(req, h2)) return null;
  const body = bodyStreamOf(req);
  const declared = req.headers['content-length'];
  if (declared !== undefined && req.headers['transfer-encoding'] === undefined) {
    const length = Number(declared);
    if (length > limits.maxBytes) throw new BodyTooLargeError(limits.maxBytes);
    if (length <= limits.bufferBytes || mustBuffer) return bufferKnownLength(body, length);
    return body; // known length within the limit: the parser enforces it, stream as is
  }
  // Chunked (or HTTP/2 without a length): count as we read.
  // An HTTP/2 call that need not be held streams at once: a gRPC client may send one message and
  // wait for an answer before the next (bidi), so waiting here for more would never end. A gRPC
  // call's stream goes as it is: the ReplayableBody that sends it counts it against maxBytes
  // (no iterator and stream on top, on the gRPC hot path).
  if (!mustBuffer && req instanceof GrpcCallRequest) return body;
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  if (!mustBuffer && h2) return Readable.from(rest([], it, 0, limits.maxBytes));
  return readCounting(it, limits, mustBuffer);
}

/** Reads a body of unknown length, counting: whole when held or small, else its head and a stream of the rest. */
async function readCounting(it: AsyncIterator<Buffer>, limits: BodyLimits, mustBuffer: boolean): Promise<RequestBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const { value, done } = await it.next();
    if (done) return Buffer.concat(chunks, size);
    size += value.length;
    if (size > limits.maxBytes) throw new BodyTooLargeError(limits.maxBytes);
    chunks.push(value);
    if (size > limits.bufferBytes && !mustBuffer) return Readable.from(rest(chunks, it, size, limits.maxBytes));
  }
}

async function* rest(head: Buffer[], it: AsyncIterator<Buffer>, size: number, max: number): AsyncGenerator<Buffer> {
  yield* head;
  for (;;) {
    const { value, done } = await it.next();
    if (done) return;
    size += value.length;
    if (size > max) throw new BodyTooLargeError(max);
    yield value;
  }
}

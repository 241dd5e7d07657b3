import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { isGrpcContentType } from '../grpc/status.js';

/**
 * A gRPC call on node's core HTTP/2 stream API, in the request/response shape the request path
 * reads and writes (the subset of IncomingMessage / ServerResponse it uses). gRPC is the hot
 * path of HTTP/2: node's compatibility API builds two stream objects per call on top of the
 * HTTP/2 stream, and its body needed an iterator and a stream more (bench/grpc.ts measures the
 * difference). Every other HTTP/2 request (curl --http2-prior-knowledge, Expect, CONNECT) keeps
 * the compatibility API.
 */
export class GrpcCallRequest {
  readonly method: string;
  readonly url: string;
  readonly socket: { remoteAddress?: string; encrypted?: boolean };
  private distinct: Record<string, string | string[]> | null = null;

  constructor(
    /** The call's stream: its readable side is the request body. */
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    private readonly rawHeaders: string[],
  ) {
    stream.on('error', ignore); // a client's reset is seen at 'close'; unheard, it would be thrown
    this.method = headers[':method'] as string;
    this.url = headers[':path'] as string;
    this.socket = peerOf(stream.session as PeerSession | undefined);
  }

  /** Each header as sent: a name sent twice keeps both lines (metadata may repeat). */
  get headersDistinct(): Record<string, string | string[]> {
    if (this.distinct) return this.distinct;
    const raw = this.rawHeaders;
    // The common case: no name repeats, so node's header object already holds each line as sent.
    // (A repeated name shows as a value that is not its line's: joined, an array, or the first.)
    const headers = this.headers as Record<string, string | string[] | undefined>;
    let repeats = false;
    for (let i = 0; i < raw.length && !repeats; i += 2) repeats = headers[raw[i]] !== raw[i + 1];
    if (!repeats) {
      this.distinct = this.headers as Record<string, string | string[]>;
      return this.distinct;
    }
    const out: Record<string, string | string[]> = {};
    for (let i = 0; i < raw.length; i += 2) {
      const had = out[raw[i]];
      out[raw[i]] = had === undefined ? raw[i + 1] : [...[had].flat(), raw[i + 1]];
    }
    this.distinct = out;
    return out;
  }
}

function ignore(): void {}

/** The client's address, read once per HTTP/2 connection (every call on it shares it). */
const kPeer = Symbol('peer');
type Peer = { remoteAddress?: string; encrypted: boolean };
type PeerSession = http2.ServerHttp2Session & { [kPeer]?: Peer };
const NO_PEER: Peer = { encrypted: false };
function peerOf(session: PeerSession | undefined): Peer {
  if (!session) return NO_PEER;
  if (session[kPeer]) return session[kPeer];
  const socket = session.socket as TLSSocket | undefined;
  const peer = { remoteAddress: socket?.remoteAddress, encrypted: socket?.encrypted === true };
  // Known only once connected; a session whose socket is gone is not remembered empty.
  if (peer.remoteAddress !== undefined) session[kPeer] = peer;
  return peer;
}

/** Whether an HTTP/2 request can take the core-stream path (the rest go through the compatibility API). */
export const isPlainGrpcCall = (headers: IncomingHttpHeaders): boolean =>
  headers.expect === undefined && headers[':method'] === 'POST' && isGrpcContentType(headers['content-type']);

/** The answer a stream carries (its listeners are module functions, shared by every call). */
const kAnswer = Symbol('grpc answer');
type AnsweredStream = ServerHttp2Stream & { [kAnswer]?: GrpcCallResponse };
const WAIT_FOR_TRAILERS = { waitForTrailers: true };
const END_STREAM = { endStream: true };

function sendTrailers(this: AnsweredStream): void {
  if (!this.destroyed) this.sendTrailers(this[kAnswer]!.trailers);
}

/** The answer half: headers, messages and trailers written straight to the HTTP/2 stream. */
export class GrpcCallResponse {
  statusCode = 200;
  headersSent = false;
  private pending: OutgoingHttpHeaders = {};
  trailers: Record<string, string> = {};

  constructor(readonly stream: AnsweredStream) {
    stream[kAnswer] = this;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }
  get writableFinished(): boolean {
    return this.stream.writableFinished;
  }

  once(event: 'close' | 'drain', listener: () => void): this {
    // A stream closes once: a plain listener spares the once-wrapper on every call.
    if (event === 'close') this.stream.on(event, listener);
    else this.stream.once(event, listener);
    return this;
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.pending[name] = value as string | string[];
    return this;
  }

  writeHead(status: number, headers: OutgoingHttpHeaders = {}): this {
    this.statusCode = status;
    this.respond(Object.assign(this.pending, headers), false);
    return this;
  }

  /** The headers go out once: with the first message, or alone and ended (a Trailers-Only answer). */
  private respond(headers: OutgoingHttpHeaders, endStream: boolean): void {
    if (this.headersSent || this.stream.destroyed) return;
    this.headersSent = true;
    headers[':status'] = this.statusCode;
    if (endStream) this.stream.respond(headers, END_STREAM);
    else {
      this.stream.respond(headers, WAIT_FOR_TRAILERS);
      this.stream.on('wantTrailers', sendTrailers);
    }
  }

  write(chunk: Buffer): boolean {
    if (!this.headersSent) this.respond(this.pending, false);
    if (this.stream.destroyed) return true;
    return this.stream.write(chunk);
  }

  addTrailers(trailers: Record<string, string>): void {
    Object.assign(this.trailers, trailers);
  }

  end(body?: string | Buffer): this {
    if (!this.headersSent) this.respond(this.pending, body === undefined);
    if (!this.stream.destroyed && !this.stream.writableEnded && this.stream.headersSent)
      body === undefined ? this.stream.end() : this.stream.end(body);
    return this;
  }

  destroy(): this {
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    return this;
  }
}

import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { GrpcCallRequest } from './grpc-call.js';

/**
 * What the request path reads of a client's request: node's IncomingMessage (HTTP/1.1, or
 * HTTP/2 through the compatibility API), or a gRPC call on a core HTTP/2 stream.
 */
export type ClientRequest = IncomingMessage | GrpcCallRequest;

/** What the request path writes an answer into: node's ServerResponse, or a gRPC call's stream. */
export interface ClientAnswer {
  statusCode: number;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  setHeader(name: string, value: string | number | readonly string[]): unknown;
  writeHead(status: number, headers?: OutgoingHttpHeaders): unknown;
  write(chunk: Buffer): boolean;
  end(body?: string | Buffer): unknown;
  addTrailers(trailers: Record<string, string>): void;
  destroy(): unknown;
  once(event: 'close' | 'drain', listener: () => void): unknown;
}

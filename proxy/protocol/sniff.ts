import type http from 'node:http';
import type http2 from 'node:http2';
import type { Socket } from 'node:net';

/** The client connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * One port, both protocols: each new connection on `http1` is told apart by its first bytes,
 * as Envoy's codec auto-detection does. A connection that opens with the HTTP/2 preface (h2c:
 * gRPC clients, `curl --http2-prior-knowledge`) goes to `h2`; any other goes to the HTTP/1.1
 * server's own handling. Only the first bytes are read before the hand-over and nothing is
 * lost: they are put back on the socket for the server that takes it.
 */
export function acceptBothProtocols(
  http1: http.Server,
  h2: http2.Http2Server,
  /** A connection that sends nothing for this long is closed (neither server's clock runs yet). */
  firstBytesTimeoutMs: number,
): void {
  const http1Connection = http1.listeners('connection') as ((socket: Socket) => void)[];
  if (http1Connection.length !== 1) throw new Error('expected the HTTP/1.1 server’s own connection listener only');
  const [ownListener] = http1Connection;
  http1.removeListener('connection', ownListener);
  http1.on('connection', (socket: Socket) => {
    let seen: Buffer | null = null;
    const silent = setTimeout(() => socket.destroy(), firstBytesTimeoutMs);
    silent.unref();
    socket.once('close', () => clearTimeout(silent));
    const onData = (chunk: Buffer) => {
      seen = seen ? Buffer.concat([seen, chunk]) : chunk;
      const n = Math.min(seen.length, PREFACE.length);
      const h2c = seen.compare(PREFACE, 0, n, 0, n) === 0;
      if (h2c && n < PREFACE.length) return; // a preface split across reads: wait for the rest
      clearTimeout(silent);
      socket.removeListener('data', onData);
      socket.pause();
      socket.unshift(seen);
      if (h2c) h2.emit('connection', socket);
      else {
        ownListener.call(http1, socket);
        // Node's HTTP/1 parser reads the socket's handle directly; the bytes put back are in the
        // stream's buffer, delivered once it flows again.
        socket.resume();
      }
    };
    socket.on('data', onData);
  });
}

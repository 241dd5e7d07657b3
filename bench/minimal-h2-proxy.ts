// The floor for a Node gRPC proxy, run beside canary-mesh in `npm run bench:grpc`: a node:http2
// h2c server, one client session per upstream, a random split, each stream piped straight
// through with its trailers. No stats, no metrics, no retries.
// Usage: minimal-h2-proxy.ts <baseline h2c://host:port> <canary h2c://host:port> <weight>
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

const [baseline, canary, weight] = process.argv.slice(2);
const sessions = [baseline, canary].map((u) => http2.connect(u.replace(/^h2c:/, 'http:')));
const server = http2.createServer();
server.on('stream', (stream, headers) => {
  const session = Math.random() * 100 < Number(weight) ? sessions[1] : sessions[0];
  const { ':authority': _a, ':scheme': _s, ...rest } = headers;
  const up = session.request(rest);
  stream.pipe(up);
  up.on('response', (h) => {
    const { ':status': status, ...out } = h;
    stream.respond({ ':status': status, ...out }, { waitForTrailers: true });
    up.pipe(stream);
  });
  up.on('trailers', (t) => stream.once('wantTrailers', () => stream.sendTrailers(t)));
  up.on('error', () => stream.destroyed || stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  stream.on('error', () => up.close(http2.constants.NGHTTP2_CANCEL));
});
server.listen(0, '127.0.0.1', () =>
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as AddressInfo).port })}\n`),
);
process.on('SIGTERM', () => {
  server.close();
  for (const s of sessions) s.close();
  process.exit(0);
});

// The floor for any Node proxy, run beside canary-mesh in `npm run bench`: a node:http server,
// one keep-alive undici Pool per upstream, a random 20% split, Pool.stream straight into the
// response. No stats, no metrics, no retries. Usage: minimal-proxy.ts <baseline> <canary> <weight>
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const [baseline, canary, weight] = process.argv.slice(2);
const pools = [new Pool(baseline, { connections: 128 }), new Pool(canary, { connections: 128 })];
const server = http.createServer((req, res) => {
  const pool = Math.random() * 100 < Number(weight) ? pools[1] : pools[0];
  const path = req.url!.replace(/^\/[^/?]*/, '') || '/';
  pool
    .stream(
      { path, method: req.method as 'POST', headers: { 'content-type': 'application/json' }, body: req },
      ({ statusCode, headers }) => {
        res.writeHead(statusCode, headers as http.OutgoingHttpHeaders);
        return res;
      },
    )
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () =>
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as AddressInfo).port })}\n`),
);
process.on('SIGTERM', () => {
  server.close();
  for (const p of pools) void p.close();
  process.exit(0);
});

// The comparison point: the usual Node choice, an http-proxy server doing the same 20%
// split (our pure splitter) with a keep-alive agent. Started by bench/run.ts.
// Usage: http-proxy-split.ts <baselineUrl> <canaryUrl> <weight>
import http from 'node:http';
import httpProxy from 'http-proxy';
import { pickVariant } from '../proxy/split/splitter.js';

const [baseline, canary, weight] = process.argv.slice(2);
const route = {
  name: 'iris',
  baseline: { version: 'v1', url: baseline },
  canary: { version: 'v2', url: canary, weight: Number(weight) },
};
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const proxy = httpProxy.createProxyServer({ agent });
proxy.on('error', (_err, _req, res) => {
  const r = res as http.ServerResponse;
  if (!r.headersSent) r.writeHead(502);
  r.end();
});
proxy.on('proxyRes', (_p, req, res) => {
  const pick = (req as http.IncomingMessage & { pick: ReturnType<typeof pickVariant> }).pick;
  res.setHeader('x-canary-variant', pick.role);
  res.setHeader('x-canary-version', pick.upstream.version);
});
const server = http.createServer((req, res) => {
  const pick = pickVariant(route);
  (req as http.IncomingMessage & { pick: typeof pick }).pick = pick;
  req.url = req.url!.replace(/^\/iris/, '') || '/';
  proxy.web(req, res, { target: pick.upstream.url });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));

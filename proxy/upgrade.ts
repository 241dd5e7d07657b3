import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { type DeploymentRoute, type RouteTable, upstreamParts } from './contract/route-table.js';
import type { OutcomeRecorder } from './request/outcomes.js';
import { stickyKeyOf } from './request/sticky-key.js';
import { pickVariant } from './split/splitter.js';
import { classifyError, classifyStatus } from './upstream/forward.js';

function rawResponse(status: string, headers: Record<string, string>, body = ''): string {
  const lines = Object.entries({
    ...headers,
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
  }).map(([k, v]) => `${k}: ${v}`);
  return `HTTP/1.1 ${status}\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * WebSocket (and other HTTP/1.1 upgrade) pass-through: the variant is chosen at upgrade time
 * like any request (sticky with `x-canary-key`), the upgrade is counted as one request of that
 * variant (101 = success), and the two sockets are then spliced together. A deployment with
 * `websockets: false` refuses upgrades with 501, which is nobody's model error.
 */
export function createUpgradeHandler(deps: {
  table: () => RouteTable;
  resolve: (url: string | undefined) => { deployment: string; path: string } | null;
  outcomes: OutcomeRecorder;
  headersTimeoutMs: number;
}) {
  return function onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const target = deps.resolve(req.url);
    const route: DeploymentRoute | undefined = target ? deps.table().deployments[target.deployment] : undefined;
    if (!target || !route) {
      socket.end(
        rawResponse(
          '404 Not Found',
          { 'content-type': 'application/json' },
          JSON.stringify({ error: { code: 'UNKNOWN_DEPLOYMENT', message: 'no route for this upgrade request' } }),
        ),
      );
      return;
    }
    if (route.settings?.websockets === false) {
      socket.end(
        rawResponse(
          '501 Not Implemented',
          { 'content-type': 'application/json' },
          JSON.stringify({
            error: {
              code: 'UPGRADE_NOT_SUPPORTED',
              message: `deployment ${route.name} does not accept WebSocket or other upgrades (websockets: false)`,
            },
          }),
        ),
      );
      return;
    }
    const sticky = stickyKeyOf(route, req.headers, req);
    const { role, upstream } = pickVariant(route, sticky.key);
    deps.outcomes.routed(route.name, upstream.version);
    const ours: Record<string, string> = {
      'x-canary-variant': role,
      'x-canary-version': upstream.version,
      ...(sticky.setCookie ? { 'set-cookie': sticky.setCookie } : {}),
    };
    // Every header goes through, `Connection: Upgrade` and `Upgrade` included (for an upgrade
    // they are the point); `host` becomes the upstream's.
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && k !== 'host') headers[k] = v;
    const url = new URL(upstream.url);
    const t0 = performance.now();
    const record = (outcome: ReturnType<typeof classifyStatus>) =>
      deps.outcomes.attempt({
        deployment: route.name,
        upstream,
        role,
        kind: 'upgrade',
        outcome,
        latencyMs: performance.now() - t0,
      });
    const up = (url.protocol === 'https:' ? https : http).request({
      host: url.hostname,
      port: url.port || (url.protocol === 'https:' ? 443 : 80),
      path: upstreamParts(upstream.url).prefix + target.path,
      method: req.method,
      headers,
      timeout: deps.headersTimeoutMs,
    });
    socket.once('close', () => up.destroy());
    up.on('upgrade', (res, upSocket, upHead) => {
      record('success');
      const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
      for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
      for (const [k, v] of Object.entries(ours)) lines.push(`${k}: ${v}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (upHead.length) socket.write(upHead);
      upSocket.on('error', () => socket.destroy());
      upSocket.pipe(socket).pipe(upSocket);
    });
    up.on('response', (res) => {
      // The model declined the upgrade: its answer goes to the client as it is.
      record(classifyStatus(res.statusCode ?? 502));
      const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
      for (let i = 0; i < res.rawHeaders.length; i += 2)
        // (Its length is ours to set: the body is sent whole, with the connection closed.)
        if (!/^(connection|transfer-encoding|content-length)$/i.test(res.rawHeaders[i]))
          lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
      for (const [k, v] of Object.entries(ours)) lines.push(`${k}: ${v}`);
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        socket.end(
          Buffer.concat([
            Buffer.from(`${lines.join('\r\n')}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`),
            body,
          ]),
        );
      });
    });
    up.on('timeout', () =>
      up.destroy(Object.assign(new Error('upgrade not answered in time'), { code: 'UND_ERR_HEADERS_TIMEOUT' })),
    );
    up.on('error', (err: Error & { code?: string }) => {
      if (socket.destroyed) return; // the client left first
      record(classifyError(err));
      socket.end(
        rawResponse(
          '502 Bad Gateway',
          { 'content-type': 'application/json', ...ours },
          JSON.stringify({
            error: { code: 'UPSTREAM_UNAVAILABLE', message: `${role} ${upstream.version}: ${err.message}` },
          }),
        ),
      );
    });
    if (head.length) up.write(head);
    up.end();
  };
}

import http from 'node:http';
import { hostAllowed, originAllowed } from '../common/host-check.js';
import type { RouteTable } from './contract/route-table.js';
import type { RouteSource } from './split/sources/route-source.js';
import type { ProxyRecorder } from './telemetry/recorder.js';

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The admin port: /metrics (Prometheus), /healthz (process alive), /readyz and /routes.
 *
 * /readyz is 200 once the proxy holds a route table, even if Redis is down: it can still
 * serve the last known table, and failing every replica's readiness at once because of a
 * Redis blip would take the whole service down. The body says when the table is stale.
 */
export function createAdminServer(deps: {
  recorder: ProxyRecorder;
  table: () => RouteTable;
  source: RouteSource;
  hasTable: () => boolean;
  appliedAt: () => number | null;
  /** DNS names answered besides loopback and IP literals. */
  allowedHosts?: string[];
  /** The client header timeout, as the data port's (checked every second, not Node's 30 s). */
  headersTimeoutMs?: number;
}) {
  const headersTimeout = deps.headersTimeoutMs ?? 60_000;
  const limits = {
    headersTimeout,
    requestTimeout: Math.max(60_000, headersTimeout),
    connectionsCheckingInterval: 1000,
  };
  return http.createServer(limits, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    // DNS rebinding: a page whose name was rebound to this address sends its own name as Host
    // (an IP literal cannot be rebound, so Prometheus scraping by address is answered).
    if (!hostAllowed(req.headers.host, { allowedHosts: deps.allowedHosts ?? [], anyIp: true }))
      return json(res, 403, {
        error: {
          code: 'FORBIDDEN_HOST',
          message: `Host ${JSON.stringify(req.headers.host ?? '')} does not name this proxy; the admin port answers loopback, IP addresses and CANARY_ALLOWED_HOSTS`,
        },
      });
    // A browser page of another origin reading the admin port (its answers include model URLs).
    const origin = req.headers.origin;
    if (origin !== undefined && !originAllowed(origin, { protocol: 'http', host: req.headers.host }, []))
      return json(res, 403, {
        error: { code: 'FORBIDDEN_ORIGIN', message: `requests from web pages at ${origin} are refused` },
      });
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'admin endpoints are read-only' } });
    switch (path) {
      case '/metrics':
        void deps.recorder.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': deps.recorder.registry.contentType });
            res.end(text);
          },
          (err: Error) => json(res, 500, { error: { code: 'INTERNAL', message: err.message } }),
        );
        return;
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz': {
        const source = deps.source.status();
        const ready = deps.hasTable();
        return json(res, ready ? 200 : 503, {
          ready,
          routeTableVersion: deps.table().version,
          routeTableAppliedAt: deps.appliedAt() === null ? null : new Date(deps.appliedAt()!).toISOString(),
          routeSource: source,
          stale: !source.connected,
          ...(ready ? {} : { reason: 'no route table received yet' }),
        });
      }
      case '/routes':
        return json(res, 200, deps.table());
      default:
        return json(res, 404, {
          error: { code: 'NOT_FOUND', message: 'admin endpoints: /metrics /healthz /readyz /routes' },
        });
    }
  });
}

import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CanaryError } from '../../common/errors.js';
import { hostAllowed, originAllowed } from '../../common/host-check.js';

export interface GuardOptions {
  /** When set, every /v1 route needs `Authorization: Bearer <token>`, reads included. */
  token: string | null;
  /** Origins besides the API's own that may call it (browsers on other sites). */
  allowedOrigins: string[];
  /** Host names accepted besides loopback ones when there is no token. */
  allowedHosts: string[];
}

/**
 * Reachable without a token: health, the dashboard's static page (it asks for the token
 * itself), the API's description (/openapi.json, /docs) and /metrics for Prometheus (counts and
 * weights per deployment name; no URLs, no secrets — as the proxies' admin port).
 */
const PUBLIC = new Set(['/', '/healthz', '/livez', '/readyz', '/openapi.json', '/metrics']);
const MUTATIONS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The API's front door, against what a web page in the user's browser could do to it:
 * - CSRF: a change must be `application/json` (a cross-site form or a no-CORS fetch cannot
 *   send that without a preflight), and a request carrying an `Origin` that is not the API's
 *   own (nor in CANARY_ALLOWED_ORIGINS) is refused;
 * - DNS rebinding: with no token, only a Host naming loopback — an IP literal in 127.0.0.0/8,
 *   ::1, or localhost, in any spelling (common/host-check.ts) — or in CANARY_ALLOWED_HOSTS is
 *   answered, so a page that rebinds its own name to 127.0.0.1 gets nothing;
 * - with a token, every /v1 route needs it, reads included.
 */
export function registerGuard(app: FastifyInstance, opts: GuardOptions): void {
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const path = req.url.split('?')[0];
    if (!opts.token) {
      if (!hostAllowed(req.headers.host, { allowedHosts: opts.allowedHosts })) {
        throw new CanaryError(
          'FORBIDDEN_HOST',
          `Host ${JSON.stringify(req.headers.host ?? '')} does not name this API; without CANARY_API_TOKEN only loopback names are answered (add others to CANARY_ALLOWED_HOSTS)`,
        );
      }
    }
    const origin = req.headers.origin;
    if (
      origin !== undefined &&
      !originAllowed(origin, { protocol: req.protocol, host: req.headers.host }, opts.allowedOrigins)
    ) {
      throw new CanaryError(
        'FORBIDDEN_ORIGIN',
        `requests from web pages at ${origin} are refused (this API's own origin, or CANARY_ALLOWED_ORIGINS, only)`,
      );
    }
    // An alert's approval link (routes/approval-page.ts) is a capability of its own: no bearer
    // token, and its page's form posts as a form — from a page carrying an Origin, which must be ours.
    const approvalPage = path.startsWith('/approve/');
    if (MUTATIONS.has(req.method) && approvalPage && origin === undefined)
      throw new CanaryError(
        'FORBIDDEN_ORIGIN',
        'an approval link approves only from its own page in a browser (the request carried no Origin)',
      );
    if (MUTATIONS.has(req.method) && !approvalPage) {
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/json')
        throw new CanaryError(
          'UNSUPPORTED_MEDIA_TYPE',
          `changes must be sent with content-type: application/json (got ${JSON.stringify(type || 'none')}), even with an empty body`,
        );
    }
    if (!opts.token || PUBLIC.has(path) || path.startsWith('/docs') || approvalPage) return;
    const header = req.headers.authorization;
    if (!header) throw new CanaryError('UNAUTHORIZED', 'this API needs Authorization: Bearer <CANARY_API_TOKEN>');
    const m = /^Bearer (.+)$/.exec(header);
    if (!m || !tokenMatches(m[1], opts.token)) throw new CanaryError('FORBIDDEN', 'the bearer token is not valid');
  });
}

import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { DeploymentRoute } from '../contract/route-table.js';

/** The key a request is routed by (none: a random draw), and the cookie to give the client, if any. */
export interface StickyKey {
  key: string | undefined;
  /** A fresh key the client is to keep: the whole Set-Cookie value. */
  setCookie?: string;
}

const UNKEYED: StickyKey = Object.freeze({ key: undefined });

/** A key kept in a cookie is what this proxy handed out: URL-safe, bounded (others are ignored). */
const COOKIE_KEY_RE = /^[A-Za-z0-9_-]{1,128}$/;

/** The value of cookie `name` in a Cookie header (RFC 6265 §5.4: `a=1; b=2`), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Which key routes the request. `x-canary-key` wins; otherwise, where the deployment keeps
 * clients sticky by cookie (`sticky`), the cookie's key, or a fresh random one the answer tells
 * the client to keep (HttpOnly, SameSite=Lax; Secure when the client came over TLS, directly or
 * through a proxy that says so in X-Forwarded-Proto). The cookie's path is the deployment's
 * prefix when the request came under it (gateway mode), `/` otherwise.
 */
export function stickyKeyOf(
  route: DeploymentRoute,
  headers: IncomingHttpHeaders,
  request: { url?: string; socket: unknown },
): StickyKey {
  const header = headers['x-canary-key'];
  if (typeof header === 'string' && header !== '') return { key: header };
  const sticky = route.settings?.sticky;
  if (!sticky) return UNKEYED;
  const kept = cookieValue(headers.cookie, sticky.cookie);
  if (kept !== undefined && COOKIE_KEY_RE.test(kept)) return { key: kept };
  const key = randomBytes(12).toString('base64url');
  const secure = isTls(request) || headers['x-forwarded-proto'] === 'https';
  return {
    key,
    setCookie: `${sticky.cookie}=${key}; Path=${cookiePath(request.url, route.name)}; Max-Age=${Math.round(sticky.ttlMs / 1000)}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`,
  };
}

/** The cookie's Path: the deployment's prefix when the request came under it (gateway mode), else `/`. */
function cookiePath(url: string | undefined, deployment: string): string {
  const prefix = `/${encodeURIComponent(deployment)}`;
  return url === prefix || url?.startsWith(`${prefix}/`) || url?.startsWith(`${prefix}?`) ? prefix : '/';
}

/** The client reached this proxy over TLS. */
const isTls = (req: { socket: unknown }): boolean => (req.socket as TLSSocket | null)?.encrypted === true;

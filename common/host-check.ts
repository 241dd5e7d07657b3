import { isIP } from 'node:net';

/**
 * Host and Origin headers parsed the way a browser or resolver reads them, for the defence
 * against DNS rebinding: a page on `evil.example` that rebinds its name to 127.0.0.1 reaches
 * a loopback server with `Host: evil.example`, so what matters is what the Host *names* — an IP
 * literal cannot be rebound, a DNS name can. Every spelling is normalised by the WHATWG URL
 * parser (case, a trailing dot, `2130706433` and `0x7f.1` for 127.0.0.1, `[::ffff:127.0.0.1]`,
 * `[0:0:0:0:0:0:0:1]`), so nothing that merely starts like a loopback address passes.
 */
export interface ParsedHost {
  /** The normalised name: an IPv4 literal, an IPv6 literal without brackets, or a DNS name without its trailing dot. */
  name: string;
  ip: 4 | 6 | null;
  port: string;
}

/** A Host header's authority: host and optional port, no userinfo, path, spaces or control characters. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(?::\d{0,5})?$/;

/** The Host header (or an origin's authority) parsed, or null when it is not one. */
export function parseHost(header: string | undefined): ParsedHost | null {
  if (!header || !AUTHORITY.test(header)) return null;
  let url: URL;
  try {
    url = new URL(`http://${header}/`);
  } catch {
    return null;
  }
  const bare = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const ip = isIP(bare);
  const name = ip ? bare : bare.replace(/\.$/, '');
  return { name, ip: ip === 4 ? 4 : ip === 6 ? 6 : null, port: url.port };
}

/** An IPv4 literal in 127.0.0.0/8, ::1, an IPv4-mapped loopback (::ffff:127.x.y.z), or `localhost`. */
export function isLoopback(h: ParsedHost): boolean {
  if (h.ip === 4) return h.name.startsWith('127.');
  if (h.ip === 6) {
    if (h.name === '::1') return true;
    // The URL parser writes ::ffff:127.0.0.1 as ::ffff:7f00:1: the mapped address's first byte is 0x7f.
    const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(h.name);
    return mapped !== null && Number.parseInt(mapped[1], 16) >> 8 === 0x7f;
  }
  return h.name === 'localhost';
}

/**
 * Whether a request's Host may be answered: loopback always; any IP literal when `anyIp` (the
 * proxy's admin port, scraped by address); otherwise only names the operator allowed.
 */
export function hostAllowed(
  header: string | undefined,
  opts: { allowedHosts: Iterable<string>; anyIp?: boolean },
): boolean {
  const h = parseHost(header);
  if (!h) return false;
  if (isLoopback(h) || (opts.anyIp && h.ip !== null)) return true;
  for (const allowed of opts.allowedHosts) {
    const a = parseHost(allowed);
    if (a && a.name === h.name) return true;
  }
  return false;
}

/**
 * Whether `origin` is the server's own origin as the request names it (scheme and Host), or
 * one the operator allowed; compared after parsing, so `http://LOCALHOST:8090` is
 * `http://localhost:8090`, and `null` or a malformed origin is nobody's.
 */
export function originAllowed(
  origin: string,
  own: { protocol: string; host: string | undefined },
  allowedOrigins: Iterable<string>,
): boolean {
  const o = normaliseOrigin(origin);
  if (o === null) return false;
  const host = parseHost(own.host);
  if (host && o === normaliseOrigin(`${own.protocol}://${own.host}`)) return true;
  for (const allowed of allowedOrigins) if (normaliseOrigin(allowed) === o) return true;
  return false;
}

function normaliseOrigin(origin: string): string | null {
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    if (u.username || u.password || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) return null;
    return u.origin;
  } catch {
    return null;
  }
}

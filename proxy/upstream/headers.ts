import type { IncomingHttpHeaders } from 'node:http';
import { upstreamParts } from '../contract/route-table.js';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): meaningful for one connection only, so a proxy
 * never forwards them, nor any field the Connection header names. `host` is replaced by
 * the upstream's (the original goes in x-forwarded-host).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'http2-settings',
  'host',
]);
/**
 * Also never sent upstream: `expect`. The proxy's own server already answered the client's
 * `Expect: 100-continue` (RFC 9110 §10.1.1) and reads the whole body before forwarding, so
 * the model server gets an ordinary request (undici refuses to send the header at all).
 */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'expect']);

function connectionListed(value: string | string[] | undefined): Set<string> | null {
  if (!value) return null;
  const list = Array.isArray(value) ? value.join(',') : value;
  const names = list
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  return names.length ? new Set(names) : null;
}

/**
 * A fresh outgoing header object (faster than deleting from the incoming one). Pass
 * `req.headersDistinct` so a header the client sent twice reaches the model as two lines,
 * as it was sent. The client's own `x-forwarded-for` is kept only when `trustProxy` says the
 * proxy sits behind another trusted proxy; otherwise it is replaced by the peer's address.
 */
export function requestHeadersForUpstream(
  incoming: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  requestId: string,
  remoteAddress: string | undefined,
  trustProxy = false,
  /** Gateway mode: `/{deployment}`, sent as X-Forwarded-Prefix (where the client's paths begin). */
  forwardedPrefix: string | null = null,
): Record<string, string | string[]> {
  const listed = connectionListed(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    // HTTP/2 pseudo-headers (:method, :path, :authority) describe this hop: each sender sets its own.
    if (NOT_FORWARDED.has(name) || listed?.has(name) || name.charCodeAt(0) === 0x3a) continue;
    const v = incoming[name];
    if (v !== undefined) out[name] = Array.isArray(v) && v.length === 1 ? v[0] : v;
  }
  out['x-request-id'] = requestId;
  const prior = trustProxy ? incoming['x-forwarded-for'] : undefined;
  const chain = Array.isArray(prior) ? prior.join(', ') : prior;
  out['x-forwarded-for'] = chain ? `${chain}, ${remoteAddress ?? ''}` : (remoteAddress ?? '');
  const authority = incoming.host ?? incoming[':authority'];
  const host = Array.isArray(authority) ? authority[0] : authority;
  if (host) out['x-forwarded-host'] = host;
  if (forwardedPrefix !== null) out['x-forwarded-prefix'] = forwardedPrefix;
  return out;
}

/**
 * The upstream's raw response headers (undici's `[name, value, …]` buffers) as a flat list for
 * `res.writeHead`, in the order and repetition the model sent them, minus hop-by-hop ones
 * (and any the upstream's Connection names), plus ours.
 */
export function rawResponseHeadersForClient(
  raw: Buffer[],
  extra: Record<string, string>,
  /** Gateway mode: rewrites Location and Content-Location into the deployment's prefix. */
  relocation?: Relocation,
): string[] {
  let listed: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toString('latin1').toLowerCase() === 'connection')
      listed = connectionListed(raw[i + 1].toString('latin1'));
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString('latin1');
    const lower = name.toLowerCase();
    if ((HOP_BY_HOP.has(lower) && lower !== 'host') || listed?.has(lower)) continue;
    const value = raw[i + 1].toString('latin1');
    const moved = relocation && (lower === 'location' || lower === 'content-location');
    out.push(name, moved ? relocate(value, relocation) : value);
  }
  for (const name in extra) out.push(name, extra[name]);
  return out;
}

/**
 * An HTTP/2 upstream's response headers (node's header object) for the client, minus pseudo and
 * hop-by-hop headers, plus ours; Location rewritten as for HTTP/1.1 answers.
 */
export function headersForClient(
  headers: Record<string, string | string[] | number | undefined>,
  extra: Record<string, string>,
  relocation?: Relocation,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || name.charCodeAt(0) === 0x3a || HOP_BY_HOP.has(name)) continue;
    const moved = relocation && (name === 'location' || name === 'content-location') && typeof v === 'string';
    out[name] = moved ? relocate(v, relocation) : typeof v === 'number' ? String(v) : v;
  }
  for (const name in extra) {
    // Ours (a sticky cookie) joins the model's own cookies rather than replacing them.
    const had = out[name];
    out[name] = name === 'set-cookie' && had !== undefined ? [...[had].flat(), extra[name]] : extra[name];
  }
  return out;
}

/** An upstream's trailers (grpc-status, grpc-message, metadata) for the client, unchanged but for pseudo-headers. */
export function trailersForClient(
  trailers: Record<string, string | string[] | number | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in trailers) {
    const v = trailers[name];
    if (v === undefined || name.charCodeAt(0) === 0x3a) continue;
    out[name] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/** Gateway mode: where the client's paths begin, and the upstream the answer came from. */
export interface Relocation {
  deploymentPrefix: string;
  upstreamUrl: string;
}

/**
 * Gateway mode, where the client asked for `/{deployment}/{rest}` and the model server saw
 * `{prefix}/{rest}`: a Location (or Content-Location) the model gives relative to its own root,
 * or as an absolute URL on its own origin, is rewritten into the deployment's prefix, so a
 * redirect to `/hello` sends the client to `/{deployment}/hello` on the proxy. Relative
 * references without a leading slash already resolve under the deployment; other origins are
 * left alone.
 */
export function relocate(value: string, r: Relocation): string {
  const upstream = upstreamParts(r.upstreamUrl);
  let path: string;
  if (value.startsWith('/') && !value.startsWith('//')) path = value;
  else {
    try {
      const u = new URL(value);
      if (u.origin !== upstream.origin) return value;
      path = u.pathname + u.search + u.hash;
    } catch {
      return value; // a relative reference: it resolves under the deployment already
    }
  }
  if (upstream.prefix && (path === upstream.prefix || path.startsWith(`${upstream.prefix}/`)))
    path = path.slice(upstream.prefix.length) || '/';
  return r.deploymentPrefix + path;
}

/** Is this an HTTP/2 stream's response (node's compatibility API)? */
export const isHttp2 = (res: object): boolean => 'stream' in res;

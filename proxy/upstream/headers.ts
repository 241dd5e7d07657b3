import type { IncomingHttpHeaders } from 'node:http';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): meaningful for one connection only, so a proxy
 * never forwards them, nor any field the Connection header names. `host` is replaced by
 * the upstream's (the original goes in x-forwarded-host).
 */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'http2-settings', 'host',
]);

function connectionListed(value: string | string[] | undefined): Set<string> | null {
  if (!value) return null;
  const list = Array.isArray(value) ? value.join(',') : value;
  const names = list.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  return names.length ? new Set(names) : null;
}

/** A fresh outgoing header object (faster than deleting from the incoming one). */
export function requestHeadersForUpstream(
  incoming: IncomingHttpHeaders, requestId: string, remoteAddress: string | undefined,
): Record<string, string | string[]> {
  const listed = connectionListed(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    const v = incoming[name];
    if (v !== undefined) out[name] = v;
  }
  out['x-request-id'] = requestId;
  const prior = incoming['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${prior}, ${remoteAddress ?? ''}` : remoteAddress ?? '';
  if (incoming.host) out['x-forwarded-host'] = incoming.host;
  return out;
}

/** The upstream's response headers minus hop-by-hop ones, plus ours. */
export function responseHeadersForClient(
  upstream: Record<string, string | string[] | undefined>, extra: Record<string, string>,
): Record<string, string | string[]> {
  const listed = connectionListed(upstream.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in upstream) {
    if ((HOP_BY_HOP.has(name) && name !== 'host') || listed?.has(name)) continue;
    const v = upstream[name];
    if (v !== undefined) out[name] = v;
  }
  for (const name in extra) out[name] = extra[name];
  return out;
}

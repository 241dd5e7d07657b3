import { randomUUID } from 'node:crypto';

/** Which deployment a request is for, the path to send upstream, and its request id. */

/** A path segment that is "." or "..", also when its dots are percent-encoded. */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * The path below the deployment with dot-segments removed once (RFC 3986 §5.2.4), or null
 * when one would climb out of it (`/echo/../iris/predict` must not reach echo as
 * `/../iris/predict`, nor iris). The query is kept as is.
 */
export function normalizeRest(rest: string): string | null {
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  // The common case, nothing to do: a dot-segment starts right after a slash, so a path with no
  // "/." (gRPC's /package.Service/Method has dots, but none there) and no encoded dot has none.
  if (!path.includes('/.') && !/%2e/i.test(path)) return rest;
  const out: string[] = [];
  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (DOT_SEGMENT.test(seg)) {
      if (seg.replace(/%2e/gi, '.') === '..') {
        if (out.length === 0) return null;
        out.pop();
      }
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return `/${out.join('/')}${q < 0 ? '' : rest.slice(q)}`;
}

/** Which deployment a request is for, and the path to send upstream; null when it cannot be parsed or leaves the deployment. */
export function resolveTarget(
  url: string | undefined,
  sidecarDeployment: string | null,
): { deployment: string; path: string } | null {
  if (url?.[0] !== '/') return null;
  if (sidecarDeployment) return { deployment: sidecarDeployment, path: url };
  // Gateway mode: /{deployment}/{rest} → /{rest}
  let end = 1;
  while (end < url.length && url[end] !== '/' && url[end] !== '?') end++;
  let deployment: string;
  try {
    deployment = decodeURIComponent(url.slice(1, end));
  } catch {
    return null;
  }
  if (DOT_SEGMENT.test(url.slice(1, end))) return null;
  const raw = url.slice(end);
  const rest = normalizeRest(raw === '' ? '/' : raw[0] === '?' ? `/${raw}` : raw);
  return rest === null ? null : { deployment, path: rest };
}

/** An incoming x-request-id is kept only when it is short and printable; otherwise a fresh one replaces it (and the original is never stored). */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The request's id: its own `x-request-id` when valid, otherwise a fresh one. */
export function requestIdOf(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/**
 * The data plane's input contract: what every proxy needs to route a request. The control
 * plane imports these types and writes tables in exactly this shape (see proxy/keys.ts for
 * where they live in Redis). Nothing here knows about the control plane.
 */
import { type CompareSpec, parsePointer } from './compare.js';
import { GRPC_CODES, type GrpcCodeName } from './grpc-codes.js';

export type Role = 'baseline' | 'canary';

export interface Upstream {
  /** Model version served at this upstream, e.g. "v2". Stats are keyed by it. */
  version: string;
  /**
   * The model server, e.g. "http://10.0.0.5:8000", or with a path prefix that every request
   * keeps: "http://h/models/iris" receives `/models/iris/predict` for `/predict`.
   */
  url: string;
}

export interface CanaryUpstream extends Upstream {
  /** Percent of traffic (0–100, decimals allowed down to 0.01) sent to the canary. */
  weight: number;
}

/** Per-deployment data-plane settings; anything absent takes the proxy's default. */
export interface RouteSettings {
  /** Time to the model's response headers, ms. */
  headersTimeoutMs?: number;
  /** Longest pause between body chunks of an answer (a stream), ms; longer is the model's timeout. */
  idleTimeoutMs?: number;
  /**
   * A canary request not answered after this long is also sent to the baseline and the first
   * answer wins: ms, "auto" (the larger of 250 ms and 3 × the baseline's live p99) or "off".
   */
  hedgeCanaryAfter?: number | 'auto' | 'off';
  /**
   * Methods safe to send twice (retry and hedge); absent: every HTTP method (model inference is).
   * gRPC calls are named by their path (`/package.Service/Method`), or `*` for all: only unary
   * methods belong here, since a call is read whole before it is sent.
   */
  retryMethods?: string[];
  /** WebSocket upgrades pass through to the chosen variant (default), or are refused with 501. */
  websockets?: boolean;
  /** Testers may pick the variant with `x-canary-force: canary|baseline`; such requests are not analysed. */
  allowForcedVariant?: boolean;
  /**
   * gRPC status codes (names) that are the model's failures; every other code but OK is the
   * caller's. Absent: UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL,
   * UNAVAILABLE, DATA_LOSS.
   */
  grpcModelErrors?: GrpcCodeName[];
  /**
   * Cookie stickiness, for clients that send no `x-canary-key` (browsers, chat front ends): a
   * request with neither gets a fresh random key, is routed by it, and is told to keep it in
   * this cookie for `ttlMs`; later requests carrying it are routed by it as by the header.
   */
  sticky?: { cookie: string; ttlMs: number };
}

/** A cookie name as RFC 6265 allows it (an HTTP token). */
export const COOKIE_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
/** The longest a sticky cookie may be kept: a year, in ms. */
export const MAX_STICKY_TTL_MS = 365 * 24 * 3600_000;

/**
 * A canary in its shadow phase (DESIGN.md §3, policy.shadow): users are answered only by the
 * baseline, and a sampled share of requests is also sent to the canary off the user's path,
 * its answer compared with the baseline's and discarded (proxy/shadow/).
 */
export interface ShadowRoute {
  /** Percent of requests (0–100) also sent to the canary. */
  percent: number;
  /** Percent of the shadowed requests also sent to the baseline a second time: its noise floor. */
  noisePercent: number;
  /** A shadow answer not complete after this long is a timeout (and is dropped), ms. */
  timeoutMs: number;
  /** Shadow requests in flight per proxy and deployment; past it they are dropped and counted. */
  maxConcurrency: number;
  /** While the proxy's own event loop lags more than this (ms), shadows are dropped: they use only spare capacity. */
  maxProxyLagMs: number;
  compare: CompareSpec;
}

export interface DeploymentRoute {
  name: string;
  baseline: Upstream;
  /** null when no canary runs: everything goes to the baseline. */
  canary: CanaryUpstream | null;
  /**
   * Retry a failed canary request (5xx, connection error, timeout) once on the baseline so
   * the user gets the baseline's answer. The failure still counts against the canary.
   * Default: true.
   */
  retryCanaryOnBaseline?: boolean;
  settings?: RouteSettings;
  /** Set while the canary shadows (its weight is then 0); absent otherwise. */
  shadow?: ShadowRoute | null;
}

export interface RouteTable {
  /** Increases with every change the control plane publishes; the proxy exposes it. */
  version: number;
  deployments: Record<string, DeploymentRoute>;
}

export const EMPTY_TABLE: RouteTable = Object.freeze({ version: 0, deployments: {} }) as RouteTable;

export class RouteTableError extends Error {
  readonly code = 'BAD_ROUTE_TABLE';
}

function checkUpstream(u: unknown, where: string): Upstream {
  if (!u || typeof u !== 'object') throw new RouteTableError(`${where}: expected an object`);
  const { version, url } = u as Record<string, unknown>;
  if (typeof version !== 'string' || version === '')
    throw new RouteTableError(`${where}.version: expected a non-empty string`);
  if (typeof url !== 'string') throw new RouteTableError(`${where}.url: expected a string`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RouteTableError(`${where}.url: not a URL: ${JSON.stringify(url)}`);
  }
  if (!UPSTREAM_SCHEMES.has(parsed.protocol)) {
    throw new RouteTableError(`${where}.url: only http, https and h2c upstreams are supported`);
  }
  if (parsed.search || parsed.hash)
    throw new RouteTableError(`${where}.url: a query string or fragment is not allowed (requests keep their own)`);
  return { version, url: urlOrigin(parsed) + parsed.pathname.replace(/\/+$/, '') };
}

/** A gRPC method as its HTTP/2 path: /package.Service/Method. */
export const GRPC_METHOD_RE = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/;

/** Model server URL schemes: HTTP/1.1 (http, https) and HTTP/2 with prior knowledge (h2c: gRPC servers). */
export const UPSTREAM_SCHEMES = new Set(['http:', 'https:', 'h2c:']);

/** A URL's origin; WHATWG URL gives "null" for schemes it does not know, such as h2c. */
export function urlOrigin(u: URL): string {
  return u.protocol === 'h2c:' ? `h2c://${u.host}` : u.origin;
}

const PARTS = new Map<string, { origin: string; prefix: string }>();

/** An upstream URL's origin (what a pool connects to) and path prefix (what every request path gets in front). */
export function upstreamParts(url: string): { origin: string; prefix: string } {
  let p = PARTS.get(url);
  if (!p) {
    const u = new URL(url);
    p = { origin: urlOrigin(u), prefix: u.pathname.replace(/\/+$/, '') };
    if (PARTS.size > 10_000) PARTS.clear(); // the table's URLs, not per request: a bound for safety
    PARTS.set(url, p);
  }
  return p;
}

const ms = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 24 * 3600_000;

function checkSettings(input: unknown, where: string): RouteSettings {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw new RouteTableError(`${where}: expected an object`);
  const s = input as Record<string, unknown>;
  const out: RouteSettings = {};
  for (const k of ['headersTimeoutMs', 'idleTimeoutMs'] as const) {
    if (s[k] === undefined) continue;
    if (!ms(s[k])) throw new RouteTableError(`${where}.${k}: expected milliseconds above 0`);
    out[k] = s[k] as number;
  }
  if (s.hedgeCanaryAfter !== undefined) {
    if (s.hedgeCanaryAfter !== 'auto' && s.hedgeCanaryAfter !== 'off' && !ms(s.hedgeCanaryAfter))
      throw new RouteTableError(`${where}.hedgeCanaryAfter: expected milliseconds, "auto" or "off"`);
    out.hedgeCanaryAfter = s.hedgeCanaryAfter as RouteSettings['hedgeCanaryAfter'];
  }
  if (s.retryMethods !== undefined) {
    const ok = (m: unknown) => typeof m === 'string' && (/^[A-Z]+$/.test(m) || m === '*' || GRPC_METHOD_RE.test(m));
    if (!Array.isArray(s.retryMethods) || !s.retryMethods.every(ok))
      throw new RouteTableError(`${where}.retryMethods: expected upper-case HTTP methods, gRPC methods or "*"`);
    out.retryMethods = s.retryMethods as string[];
  }
  for (const k of ['websockets', 'allowForcedVariant'] as const) {
    if (s[k] === undefined) continue;
    if (typeof s[k] !== 'boolean') throw new RouteTableError(`${where}.${k}: expected a boolean`);
    out[k] = s[k] as boolean;
  }
  if (s.grpcModelErrors !== undefined) {
    const codes = s.grpcModelErrors;
    if (!Array.isArray(codes) || !codes.every((c) => GRPC_CODES.includes(c) && c !== 'OK'))
      throw new RouteTableError(`${where}.grpcModelErrors: expected gRPC status code names other than OK`);
    out.grpcModelErrors = codes as GrpcCodeName[];
  }
  if (s.sticky !== undefined) {
    const st = s.sticky as { cookie?: unknown; ttlMs?: unknown } | null;
    const ttl = st?.ttlMs;
    if (
      typeof st?.cookie !== 'string' ||
      !COOKIE_NAME_RE.test(st.cookie) ||
      typeof ttl !== 'number' ||
      !Number.isInteger(ttl) ||
      ttl < 1000 ||
      ttl > MAX_STICKY_TTL_MS
    )
      throw new RouteTableError(`${where}.sticky: expected {cookie: a cookie name, ttlMs: 1 s to a year}`);
    out.sticky = { cookie: st.cookie, ttlMs: ttl };
  }
  return out;
}

/** The default of ShadowRoute.maxProxyLagMs (and of policy.shadow.maxProxyLag). */
export const DEFAULT_MAX_PROXY_LAG_MS = 50;

function checkShadow(input: unknown, where: string): ShadowRoute | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== 'object' || Array.isArray(input)) throw new RouteTableError(`${where}: expected an object`);
  const s = input as Record<string, unknown>;
  const pct = (k: string) => {
    if (typeof s[k] !== 'number' || !((s[k] as number) >= 0 && (s[k] as number) <= 100))
      throw new RouteTableError(`${where}.${k}: expected a number from 0 to 100`);
    return s[k] as number;
  };
  if (!ms(s.timeoutMs)) throw new RouteTableError(`${where}.timeoutMs: expected milliseconds above 0`);
  if (!Number.isInteger(s.maxConcurrency) || (s.maxConcurrency as number) < 1)
    throw new RouteTableError(`${where}.maxConcurrency: expected a positive integer`);
  const maxProxyLagMs = s.maxProxyLagMs ?? DEFAULT_MAX_PROXY_LAG_MS;
  if (!ms(maxProxyLagMs)) throw new RouteTableError(`${where}.maxProxyLagMs: expected milliseconds above 0`);
  const c = (s.compare ?? {}) as Record<string, unknown>;
  const fields = c.fields ?? [];
  if (!Array.isArray(fields) || fields.some((f) => typeof f !== 'string'))
    throw new RouteTableError(`${where}.compare.fields: expected a list of JSON Pointers`);
  try {
    for (const f of fields) parsePointer(f as string);
  } catch (e) {
    throw new RouteTableError(`${where}.compare.fields: ${(e as Error).message}`);
  }
  const tol = (k: string) => {
    const v = c[k] ?? 0;
    if (typeof v !== 'number' || !(v >= 0)) throw new RouteTableError(`${where}.compare.${k}: expected a number ≥ 0`);
    return v;
  };
  return {
    percent: pct('percent'),
    noisePercent: pct('noisePercent'),
    timeoutMs: s.timeoutMs as number,
    maxConcurrency: s.maxConcurrency as number,
    maxProxyLagMs: maxProxyLagMs as number,
    compare: { fields: fields as string[], tolerance: tol('tolerance'), relativeTolerance: tol('relativeTolerance') },
  };
}

/**
 * Validates an untrusted table (from Redis or a file) and returns a normalised copy.
 * A proxy never applies a table that fails this; it keeps the last good one.
 */
export function parseRouteTable(input: unknown): RouteTable {
  if (!input || typeof input !== 'object') throw new RouteTableError('route table: expected an object');
  const raw = input as Record<string, unknown>;
  const version = raw.version ?? 0;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    throw new RouteTableError('route table.version: expected a non-negative integer');
  }
  const deps = raw.deployments ?? {};
  if (typeof deps !== 'object' || Array.isArray(deps))
    throw new RouteTableError('route table.deployments: expected an object keyed by deployment name');
  const deployments: Record<string, DeploymentRoute> = {};
  for (const [name, d] of Object.entries(deps as Record<string, unknown>)) {
    const where = `deployments.${name}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) throw new RouteTableError(`${where}: invalid deployment name`);
    if (!d || typeof d !== 'object') throw new RouteTableError(`${where}: expected an object`);
    const dr = d as Record<string, unknown>;
    const baseline = checkUpstream(dr.baseline, `${where}.baseline`);
    let canary: CanaryUpstream | null = null;
    if (dr.canary != null) {
      const c = checkUpstream(dr.canary, `${where}.canary`);
      const weight = (dr.canary as Record<string, unknown>).weight;
      if (typeof weight !== 'number' || !(weight >= 0 && weight <= 100)) {
        throw new RouteTableError(`${where}.canary.weight: expected a number from 0 to 100`);
      }
      canary = { ...c, weight };
    }
    const retry = dr.retryCanaryOnBaseline;
    if (retry !== undefined && typeof retry !== 'boolean')
      throw new RouteTableError(`${where}.retryCanaryOnBaseline: expected a boolean`);
    const shadow = checkShadow(dr.shadow, `${where}.shadow`);
    if (shadow && !canary) throw new RouteTableError(`${where}.shadow: needs a canary to shadow`);
    deployments[name] = {
      name,
      baseline,
      canary,
      retryCanaryOnBaseline: retry ?? true,
      settings: checkSettings(dr.settings, `${where}.settings`),
      ...(shadow ? { shadow } : {}),
    };
  }
  return { version, deployments };
}

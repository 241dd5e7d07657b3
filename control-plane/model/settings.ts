import { parseDuration } from '../../common/duration.js';
import { CanaryError } from '../../common/errors.js';
import { DEFAULT_GRPC_MODEL_ERROR_NAMES, GRPC_CODES, type GrpcCodeName } from '../../proxy/contract/grpc-codes.js';
import {
  COOKIE_NAME_RE,
  GRPC_METHOD_RE,
  MAX_STICKY_TTL_MS,
  type RouteSettings,
} from '../../proxy/contract/route-table.js';

/**
 * What is stored per deployment: the proxies' route settings, and the version probe's path
 * (`healthPath`: absent = the usual health paths are tried; null = no probe), which stays in
 * the control plane (the route table carries only RouteSettings).
 */
export type DeploymentSettings = RouteSettings & { healthPath?: string | null; pricing?: Pricing | null };

/** A streaming deployment's token prices (any currency, per million tokens): verdicts show cost per 1,000 answers. */
export interface Pricing {
  inputPer1M: number;
  outputPer1M: number;
}

/**
 * A deployment's data-plane settings as the API speaks them (durations as strings), and the
 * route-table shape the proxies apply. Set at creation, changed later with PATCH; anything
 * not given keeps its value (and an absent value is the proxy's default).
 */
export interface SettingsInput {
  /** The version probe: `{path: "/ready"}`, `{path: "auto"}` (the usual paths) or `{path: null}` (none). */
  health?: unknown;
  timeouts?: { headers?: unknown; idle?: unknown };
  hedgeCanaryAfter?: unknown;
  retryMethods?: unknown;
  websockets?: unknown;
  allowForcedVariant?: unknown;
  /** gRPC status code names that are the model's failures (the rest but OK are the caller's). */
  grpcModelErrors?: unknown;
  retryCanaryOnBaseline?: unknown;
  /** `{inputPer1M, outputPer1M}` or null: token prices, for the cost shown beside streaming verdicts. */
  pricing?: unknown;
  /** `{cookie, ttl?}` or null: clients without `x-canary-key` are kept on their variant by a cookie. */
  sticky?: unknown;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const bad = (field: string, msg: string) => new CanaryError('BAD_REQUEST', `${field}: ${msg}`);

function duration(v: unknown, field: string): number {
  try {
    const ms = parseDuration(v, field);
    if (ms <= 0 || ms > 24 * 3600_000) throw new Error('between 1ms and 24h');
    return ms;
  } catch (e) {
    throw bad(field, `expected a duration like "30s" (${(e as Error).message})`);
  }
}

/** Applies `input` over `current`; throws BAD_REQUEST naming the field. */
export function resolveSettings(
  input: SettingsInput,
  current: { settings: DeploymentSettings; retryCanaryOnBaseline: boolean },
) {
  const settings: DeploymentSettings = { ...current.settings };
  let retry = current.retryCanaryOnBaseline;
  if (input.timeouts !== undefined) {
    if (typeof input.timeouts !== 'object' || input.timeouts === null)
      throw bad('timeouts', 'expected {headers?, idle?}');
    if (input.timeouts.headers !== undefined)
      settings.headersTimeoutMs = duration(input.timeouts.headers, 'timeouts.headers');
    if (input.timeouts.idle !== undefined) settings.idleTimeoutMs = duration(input.timeouts.idle, 'timeouts.idle');
  }
  if (input.hedgeCanaryAfter !== undefined) {
    const h = input.hedgeCanaryAfter;
    settings.hedgeCanaryAfter = h === 'auto' || h === 'off' ? h : duration(h, 'hedgeCanaryAfter');
  }
  if (input.retryMethods !== undefined) {
    const m = input.retryMethods;
    const ok = (x: unknown) =>
      typeof x === 'string' && (METHODS.has(x.toUpperCase()) || x === '*' || GRPC_METHOD_RE.test(x));
    if (!Array.isArray(m) || !m.every(ok))
      throw bad(
        'retryMethods',
        `expected a list of HTTP methods (${[...METHODS].join(', ')}), gRPC methods (/package.Service/Method) or "*" (every unary gRPC method)`,
      );
    settings.retryMethods = [...new Set(m.map((x: string) => (x.startsWith('/') ? x : x.toUpperCase())))];
  }
  if (input.grpcModelErrors !== undefined) {
    const codes = input.grpcModelErrors;
    if (!Array.isArray(codes) || !codes.every((c) => GRPC_CODES.includes(c) && c !== 'OK'))
      throw bad(
        'grpcModelErrors',
        `expected a list of gRPC status code names other than OK (${GRPC_CODES.slice(1).join(', ')})`,
      );
    settings.grpcModelErrors = [...new Set(codes as GrpcCodeName[])];
  }
  for (const k of ['websockets', 'allowForcedVariant'] as const) {
    if (input[k] === undefined) continue;
    if (typeof input[k] !== 'boolean') throw bad(k, 'expected true or false');
    settings[k] = input[k] as boolean;
  }
  if (input.health !== undefined) {
    const h = input.health as { path?: unknown } | null;
    if (typeof h !== 'object' || h === null || !('path' in h))
      throw bad('health', 'expected {path: "/healthz" | "auto" | null}');
    if (h.path === 'auto') delete settings.healthPath;
    else if (h.path === null) settings.healthPath = null;
    else if (typeof h.path === 'string' && /^\/[^\s#]{0,199}$/.test(h.path)) settings.healthPath = h.path;
    else
      throw bad(
        'health.path',
        'expected a path starting with "/" (at most 200 characters), "auto", or null for no probe',
      );
  }
  if (input.pricing !== undefined) settings.pricing = pricingOf(input.pricing);
  if (input.sticky !== undefined) {
    const st = stickyOf(input.sticky);
    if (st) settings.sticky = st;
    else delete settings.sticky;
  }
  if (input.retryCanaryOnBaseline !== undefined) {
    if (typeof input.retryCanaryOnBaseline !== 'boolean') throw bad('retryCanaryOnBaseline', 'expected true or false');
    retry = input.retryCanaryOnBaseline;
  }
  return { settings, retryCanaryOnBaseline: retry };
}

/** What 1,000 answers cost at these prices, from the tokens measured (per-answer means). */
export function costPer1kAnswers(
  p: Pricing,
  s: { streams: number; outputTokens: number; promptTokens: number },
): number | null {
  if (s.streams === 0) return null;
  return (1000 * (s.promptTokens * p.inputPer1M + s.outputTokens * p.outputPer1M)) / 1e6 / s.streams;
}

/** The default time a sticky cookie is kept. */
const DEFAULT_STICKY_TTL_MS = 24 * 3600_000;

function stickyOf(v: unknown): RouteSettings['sticky'] | null {
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('sticky', 'expected {cookie, ttl?} or null');
  const { cookie, ttl } = v as { cookie?: unknown; ttl?: unknown };
  if (typeof cookie !== 'string' || !COOKIE_NAME_RE.test(cookie))
    throw bad(
      'sticky.cookie',
      `expected a cookie name (1–64 letters, digits or !#$%&'*+-.^_\`|~), got ${JSON.stringify(cookie)}`,
    );
  let ttlMs = DEFAULT_STICKY_TTL_MS;
  if (ttl !== undefined) {
    try {
      ttlMs = parseDuration(ttl, 'sticky.ttl');
    } catch (e) {
      throw bad('sticky.ttl', `expected a duration like "24h" (${(e as Error).message})`);
    }
    if (ttlMs < 1000 || ttlMs > MAX_STICKY_TTL_MS || ttlMs % 1000 !== 0)
      throw bad('sticky.ttl', 'expected whole seconds from 1s to 8760h (a year)');
  }
  return { cookie, ttlMs };
}

function pricingOf(v: unknown): Pricing | null {
  if (v === null) return null;
  const p = v as Record<string, unknown>;
  const price = (k: 'inputPer1M' | 'outputPer1M') => {
    const n = p?.[k];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 1e6)
      throw bad(`pricing.${k}`, `expected a price per million tokens from 0 to 1000000, got ${JSON.stringify(n)}`);
    return n;
  };
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('pricing', 'expected {inputPer1M, outputPer1M} or null');
  return { inputPer1M: price('inputPer1M'), outputPer1M: price('outputPer1M') };
}

const asDuration = (ms: number) =>
  ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;

/** The API view of the settings, with the defaults the proxy applies when one is absent. */
export function settingsToApi(
  s: DeploymentSettings,
  retryCanaryOnBaseline: boolean,
  defaults: { headersTimeoutMs: number; idleTimeoutMs: number },
) {
  const h = s.hedgeCanaryAfter ?? 'auto';
  return {
    retryCanaryOnBaseline,
    timeouts: {
      headers: asDuration(s.headersTimeoutMs ?? defaults.headersTimeoutMs),
      idle: asDuration(s.idleTimeoutMs ?? defaults.idleTimeoutMs),
    },
    hedgeCanaryAfter: typeof h === 'number' ? asDuration(h) : h,
    retryMethods: s.retryMethods ?? 'all',
    websockets: s.websockets ?? true,
    allowForcedVariant: s.allowForcedVariant ?? false,
    grpcModelErrors: s.grpcModelErrors ?? [...DEFAULT_GRPC_MODEL_ERROR_NAMES],
    health: { path: s.healthPath === undefined ? 'auto' : s.healthPath },
    pricing: s.pricing ?? null,
    sticky: s.sticky
      ? {
          cookie: s.sticky.cookie,
          ttl: s.sticky.ttlMs % 3_600_000 === 0 ? `${s.sticky.ttlMs / 3_600_000}h` : asDuration(s.sticky.ttlMs),
        }
      : null,
  };
}

import { type CompareSpec, parsePointer } from '../../proxy/contract/compare.js';
import { DEFAULT_MAX_PROXY_LAG_MS } from '../../proxy/contract/route-table.js';
import { bad, bool, dur, num } from './policy-fields.js';

/**
 * The shadow phase (policy.shadow): before any user gets an answer from the canary, a share
 * of live requests is also sent to it off the user's path and its answers are compared with
 * the baseline's. It leaves shadow for its first live step only through the gate in decide().
 */
export interface ShadowPolicy {
  /** Percent of live requests also sent to the canary. */
  percent: number;
  /** The least time in shadow, even when the evidence is in earlier. */
  durationMs: number;
  compare: CompareSpec;
  /** The gate: the always-valid lower bound on agreement must reach this… */
  agreementMin: number;
  /** …over at least this many compared answers. */
  minRequests: number;
  /** Percent of shadowed requests also sent to the baseline twice: its noise floor. */
  noisePercent: number;
  /**
   * Judge agreement against the noise floor: pass also when the canary disagrees at most
   * 1 − agreementMin more often than the baseline disagrees with itself, and roll back only
   * when it disagrees more than both allow. For nondeterministic models.
   */
  relativeToNoise: boolean;
  /** A shadow answer not complete after this long is a timeout. */
  timeoutMs: number;
  /** Shadow requests in flight per proxy; past it they are dropped and counted. */
  maxConcurrency: number;
  /** While a proxy's own event loop lags more than this, it drops shadows (they use only spare capacity). */
  maxProxyLagMs: number;
}

export const DEFAULT_SHADOW: Readonly<ShadowPolicy> = Object.freeze({
  percent: 100,
  durationMs: 5 * 60_000,
  compare: Object.freeze({ fields: [], tolerance: 0, relativeTolerance: 0 }) as CompareSpec,
  agreementMin: 0.95,
  minRequests: 200,
  noisePercent: 5,
  relativeToNoise: false,
  timeoutMs: 10_000,
  maxConcurrency: 32,
  maxProxyLagMs: DEFAULT_MAX_PROXY_LAG_MS,
});

export function resolveShadow(v: unknown, base: ShadowPolicy | null): ShadowPolicy | null {
  if (v === undefined) return base;
  if (v === null || v === false) return null;
  if (v === true) return structuredClone(base ?? DEFAULT_SHADOW) as ShadowPolicy;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('shadow: expected an object, true, or null');
  const s = v as Record<string, unknown>;
  const known = new Set([
    'percent',
    'duration',
    'compare',
    'agreementMin',
    'minRequests',
    'noisePercent',
    'relativeToNoise',
    'timeout',
    'maxConcurrency',
    'maxProxyLag',
  ]);
  for (const k of Object.keys(s))
    if (!known.has(k)) throw bad(`shadow.${k}: unknown field (known: ${[...known].join(', ')})`);
  const b = base ?? DEFAULT_SHADOW;
  const c = s.compare ?? {};
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw bad('shadow.compare: expected an object');
  const cmp = c as Record<string, unknown>;
  for (const k of Object.keys(cmp))
    if (!['field', 'fields', 'tolerance', 'relativeTolerance'].includes(k))
      throw bad(`shadow.compare.${k}: unknown field (known: field, fields, tolerance, relativeTolerance)`);
  if (cmp.field !== undefined && cmp.fields !== undefined) throw bad('shadow.compare: give field or fields, not both');
  let fields = s.compare === undefined ? b.compare.fields : [];
  if (cmp.field !== undefined) fields = [cmp.field as string];
  if (cmp.fields !== undefined) {
    if (!Array.isArray(cmp.fields)) throw bad('shadow.compare.fields: expected a list of JSON Pointers');
    fields = cmp.fields as string[];
  }
  for (const f of fields) {
    if (typeof f !== 'string') throw bad('shadow.compare.field: expected a JSON Pointer string such as "/prediction"');
    try {
      parsePointer(f);
    } catch (e) {
      throw bad(`shadow.compare.field: ${(e as Error).message}`);
    }
  }
  const timeoutMs = dur(s.timeout, 'shadow.timeout', b.timeoutMs);
  if (timeoutMs < 10) throw bad('shadow.timeout: must be at least 10ms');
  const maxConcurrency = num(s.maxConcurrency, 'shadow.maxConcurrency', b.maxConcurrency, 1, 10_000);
  if (!Number.isInteger(maxConcurrency)) throw bad('shadow.maxConcurrency: expected a whole number');
  return {
    percent: num(s.percent, 'shadow.percent', b.percent, 0.01, 100),
    durationMs: dur(s.duration, 'shadow.duration', b.durationMs),
    compare: {
      fields,
      tolerance: num(
        cmp.tolerance,
        'shadow.compare.tolerance',
        s.compare === undefined ? b.compare.tolerance : 0,
        0,
        1e12,
      ),
      relativeTolerance: num(
        cmp.relativeTolerance,
        'shadow.compare.relativeTolerance',
        s.compare === undefined ? b.compare.relativeTolerance : 0,
        0,
        1,
      ),
    },
    agreementMin: num(s.agreementMin, 'shadow.agreementMin', b.agreementMin, 0.5, 0.9999),
    minRequests: num(s.minRequests, 'shadow.minRequests', b.minRequests, 1, 1e9),
    noisePercent: num(s.noisePercent, 'shadow.noisePercent', b.noisePercent, 0, 100),
    relativeToNoise: bool(s.relativeToNoise, 'shadow.relativeToNoise', b.relativeToNoise),
    timeoutMs,
    maxConcurrency,
    maxProxyLagMs: dur(s.maxProxyLag, 'shadow.maxProxyLag', b.maxProxyLagMs ?? DEFAULT_MAX_PROXY_LAG_MS),
  };
}

/** The API shape of a shadow policy (durations as strings). */
export function shadowToApi(s: ShadowPolicy, ms: (v: number) => string) {
  return {
    percent: s.percent,
    duration: ms(s.durationMs),
    compare: s.compare,
    agreementMin: s.agreementMin,
    minRequests: s.minRequests,
    noisePercent: s.noisePercent,
    relativeToNoise: s.relativeToNoise,
    timeout: ms(s.timeoutMs),
    maxConcurrency: s.maxConcurrency,
    maxProxyLag: ms(s.maxProxyLagMs ?? DEFAULT_MAX_PROXY_LAG_MS),
  };
}

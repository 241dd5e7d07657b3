import { type ApprovalKind, type DeploymentWindow, resolveApprovals, resolveWindows, windowsToApi } from './gates.js';
import { bad, bool, dur, num } from './policy-fields.js';
import { resolveShadow, type ShadowPolicy, shadowToApi } from './shadow-policy.js';

export { DEFAULT_SHADOW, type ShadowPolicy } from './shadow-policy.js';

/**
 * A canary's policy (DESIGN.md §3). Every field is optional in the API; defaults below.
 * Durations are stored resolved to milliseconds.
 */
export type MetricsSourceName = 'proxy' | 'prometheus';

export interface Policy {
  /** Where the analysis reads stats: the proxies' windowed stats, or Prometheus. */
  metrics: MetricsSourceName;
  intervalMs: number;
  /** How far back the baseline's latency is read to fix a step's latency limits when the step starts. */
  windowMs: number;
  /** Canary weights in order; with `autoSteps` the first is chosen from the traffic at start. */
  steps: number[];
  /** steps: "auto" — start at the smallest of 1, 10, 50 where a clean canary can decide quickly. */
  autoSteps: boolean;
  /** A floor: never advance or promote on fewer canary requests than this. */
  minRequests: number;
  /** The least time a step lasts, even when the evidence is in earlier. */
  stepDurationMs: number;
  /** A step that has not decided after this long says so, with advice (it keeps going). */
  maxStepDurationMs: number;
  /** The whole rollout's false-rollback budget: P(roll back a canary that is as good as the baseline). */
  falseRollbackRate: number;
  autoPromote: boolean;
  autoRollback: boolean;
  /** Business metric: a drop of more than this fraction against the baseline… */
  businessDropMax: number;
  /** …sustained this long… */
  businessForMs: number;
  /** Confidence of the evidence needed to advance and promote (non-inferiority), and of shown bounds. */
  confidence: number;
  /** Fewer outcomes per variant than this: the business rule is inconclusive. */
  businessMinOutcomes: number;
  /** A shadow phase before the first live step; null: the canary goes live at once. */
  shadow: ShadowPolicy | null;
  /**
   * A cold canary's first seconds (model load, JIT, caches) are judged for errors but not for
   * latency: latency counts from the first whole second at least `durationMs` after the canary
   * started by which it had served `requests` requests. null: judged from the first request.
   */
  warmup: { durationMs: number; requests: number } | null;
  /** What waits for a person (POST …/approve): every live step advance ("steps"), the promotion ("promote"). */
  approvals: ApprovalKind[];
  /** When a healthy canary may advance and promote (null: any time). A rollback never waits. */
  windows: DeploymentWindow[] | null;
  thresholds: {
    /** Canary error rate minus baseline's, as a fraction (0.05 = 5 points). */
    errorRateDelta: number;
    latencyP95DeltaMs: number;
    /** Absolute canary error rate that is critical at once. */
    errorRateMax: number;
    latencyP99Ratio: number;
    latencyP99ForMs: number;
    /** Optional relative p95 limit for slow models: the p95 limit becomes max(+delta, ratio ×). */
    latencyP95Ratio: number | null;
    /** Streams: the canary's median time per output token must stay within this × the baseline's. */
    tpotRatio: number;
    /** Streams, a cost guard (null: off): the canary's median answer length within this × the baseline's. */
    outputTokensRatio: number | null;
  };
}

export const DEFAULT_POLICY: Readonly<Policy> = Object.freeze({
  metrics: 'proxy' as MetricsSourceName,
  intervalMs: 30_000,
  windowMs: 5 * 60_000,
  steps: [1, 10, 50, 100],
  autoSteps: false,
  minRequests: 100,
  stepDurationMs: 30_000, // = interval unless set
  maxStepDurationMs: 30 * 60_000,
  falseRollbackRate: 0.01,
  autoPromote: true,
  autoRollback: true,
  businessDropMax: 0.1,
  businessForMs: 15 * 60_000,
  confidence: 0.95,
  businessMinOutcomes: 200,
  shadow: null,
  warmup: Object.freeze({ durationMs: 20_000, requests: 10 }),
  approvals: [],
  windows: null,
  thresholds: Object.freeze({
    errorRateDelta: 0.05,
    latencyP95DeltaMs: 100,
    errorRateMax: 0.05,
    latencyP99Ratio: 2.0,
    latencyP99ForMs: 5 * 60_000,
    latencyP95Ratio: null,
    tpotRatio: 1.2,
    outputTokensRatio: null,
  }),
});

/** The weights steps: "auto" may start at, and the ramp it continues with. */
export const AUTO_STEPS = Object.freeze([1, 10, 50, 100]);

/** Validates an API policy (strings for durations) over a base policy; throws BAD_REQUEST. */
export function resolvePolicy(input: unknown, base: Policy = DEFAULT_POLICY): Policy {
  if (input === undefined || input === null) return structuredClone(base) as Policy;
  if (typeof input !== 'object' || Array.isArray(input)) throw bad('expected an object');
  const p = input as Record<string, unknown>;
  const known = new Set([
    'metrics',
    'interval',
    'window',
    'steps',
    'minRequests',
    'stepDuration',
    'maxStepDuration',
    'autoPromote',
    'autoRollback',
    'falseRollbackRate',
    'thresholds',
    'businessDropMax',
    'businessFor',
    'confidence',
    'businessMinOutcomes',
    'shadow',
    'warmup',
    'approvals',
    'windows',
  ]);
  for (const k of Object.keys(p)) if (!known.has(k)) throw bad(`${k}: unknown field (known: ${[...known].join(', ')})`);
  const intervalMs = dur(p.interval, 'interval', base.intervalMs);
  if (intervalMs < 100) throw bad('interval: must be at least 100ms');
  let steps = base.steps;
  let autoSteps = base.autoSteps ?? false;
  if (p.steps === 'auto') {
    steps = [...AUTO_STEPS];
    autoSteps = true;
  } else if (p.steps !== undefined) {
    autoSteps = false;
    if (
      !Array.isArray(p.steps) ||
      p.steps.length === 0 ||
      p.steps.some((s) => typeof s !== 'number' || !(s > 0 && s <= 100))
    )
      throw bad('steps: expected "auto" or a non-empty list of percentages in (0, 100]');
    for (let i = 1; i < p.steps.length; i++) if (p.steps[i] <= p.steps[i - 1]) throw bad('steps: must increase');
    steps = p.steps as number[];
  }
  const t = (p.thresholds ?? {}) as Record<string, unknown>;
  if (typeof t !== 'object' || Array.isArray(t)) throw bad('thresholds: expected an object');
  const knownT = new Set([
    'errorRateDelta',
    'latencyP95DeltaMs',
    'latencyP95Ratio',
    'errorRateMax',
    'latencyP99Ratio',
    'latencyP99For',
    'tpotRatio',
    'outputTokensRatio',
  ]);
  for (const k of Object.keys(t)) if (!knownT.has(k)) throw bad(`thresholds.${k}: unknown field`);
  if (p.metrics !== undefined && p.metrics !== 'proxy' && p.metrics !== 'prometheus')
    throw bad('metrics: expected "proxy" or "prometheus"');
  return {
    metrics: (p.metrics as MetricsSourceName | undefined) ?? base.metrics,
    intervalMs,
    windowMs: dur(p.window, 'window', base.windowMs),
    steps,
    autoSteps,
    minRequests: num(p.minRequests, 'minRequests', base.minRequests, 1, 1e9),
    // A step lasts at least one interval unless set: the default follows the interval.
    stepDurationMs: dur(
      p.stepDuration,
      'stepDuration',
      p.interval !== undefined && p.stepDuration === undefined ? intervalMs : base.stepDurationMs,
    ),
    maxStepDurationMs: dur(
      p.maxStepDuration,
      'maxStepDuration',
      base.maxStepDurationMs ?? DEFAULT_POLICY.maxStepDurationMs,
    ),
    falseRollbackRate: num(
      p.falseRollbackRate,
      'falseRollbackRate',
      base.falseRollbackRate ?? DEFAULT_POLICY.falseRollbackRate,
      1e-6,
      0.2,
    ),
    autoPromote: bool(p.autoPromote, 'autoPromote', base.autoPromote),
    autoRollback: bool(p.autoRollback, 'autoRollback', base.autoRollback),
    businessDropMax: num(
      p.businessDropMax,
      'businessDropMax',
      base.businessDropMax ?? DEFAULT_POLICY.businessDropMax,
      0,
      1,
    ),
    businessForMs: dur(p.businessFor, 'businessFor', base.businessForMs ?? DEFAULT_POLICY.businessForMs),
    confidence: num(p.confidence, 'confidence', base.confidence ?? DEFAULT_POLICY.confidence, 0.5, 0.9999),
    businessMinOutcomes: num(
      p.businessMinOutcomes,
      'businessMinOutcomes',
      base.businessMinOutcomes ?? DEFAULT_POLICY.businessMinOutcomes,
      2,
      1e9,
    ),
    shadow: resolveShadow(p.shadow, base.shadow ?? null),
    warmup: resolveWarmup(p.warmup, base.warmup === undefined ? DEFAULT_POLICY.warmup : base.warmup),
    approvals: resolveApprovals(p.approvals, base.approvals ?? []),
    windows: resolveWindows(p.windows, base.windows ?? null),
    thresholds: {
      errorRateDelta: num(t.errorRateDelta, 'thresholds.errorRateDelta', base.thresholds.errorRateDelta, 0, 1),
      latencyP95DeltaMs: num(
        t.latencyP95DeltaMs,
        'thresholds.latencyP95DeltaMs',
        base.thresholds.latencyP95DeltaMs,
        0,
        3_600_000,
      ),
      errorRateMax: num(t.errorRateMax, 'thresholds.errorRateMax', base.thresholds.errorRateMax, 0, 1),
      latencyP99Ratio: num(t.latencyP99Ratio, 'thresholds.latencyP99Ratio', base.thresholds.latencyP99Ratio, 1, 1000),
      latencyP99ForMs: dur(t.latencyP99For, 'thresholds.latencyP99For', base.thresholds.latencyP99ForMs),
      latencyP95Ratio:
        t.latencyP95Ratio === null
          ? null
          : t.latencyP95Ratio === undefined
            ? (base.thresholds.latencyP95Ratio ?? null)
            : num(t.latencyP95Ratio, 'thresholds.latencyP95Ratio', 1, 1, 1000),
      tpotRatio: num(t.tpotRatio, 'thresholds.tpotRatio', base.thresholds.tpotRatio ?? 1.2, 1, 100),
      outputTokensRatio:
        t.outputTokensRatio === null
          ? null
          : t.outputTokensRatio === undefined
            ? (base.thresholds.outputTokensRatio ?? null)
            : num(t.outputTokensRatio, 'thresholds.outputTokensRatio', 1, 1, 1000),
    },
  };
}

/** policy.warmup: null (off), or {duration?, requests?} over the base's. */
function resolveWarmup(v: unknown, base: Policy['warmup']): Policy['warmup'] {
  if (v === undefined) return base === null ? null : { ...base };
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('warmup: expected null or {duration, requests}');
  const w = v as Record<string, unknown>;
  for (const k of Object.keys(w))
    if (k !== 'duration' && k !== 'requests') throw bad(`warmup.${k}: unknown field (known: duration, requests)`);
  const dflt = base ?? DEFAULT_POLICY.warmup!;
  const durationMs = dur(w.duration, 'warmup.duration', dflt.durationMs);
  if (durationMs > 3_600_000) throw bad('warmup.duration: at most 1h');
  const requests = num(w.requests, 'warmup.requests', dflt.requests, 0, 1e6);
  if (!Number.isInteger(requests)) throw bad(`warmup.requests: expected a whole number, got ${requests}`);
  return { durationMs, requests };
}

/** The API shape of a policy (durations as strings), the inverse of resolvePolicy. */
export function policyToApi(p: Policy) {
  const ms = (v: number) =>
    v % 3_600_000 === 0
      ? `${v / 3_600_000}h`
      : v % 60_000 === 0
        ? `${v / 60_000}m`
        : v % 1000 === 0
          ? `${v / 1000}s`
          : `${v}ms`;
  return {
    metrics: p.metrics,
    interval: ms(p.intervalMs),
    window: ms(p.windowMs),
    steps: p.autoSteps ? 'auto' : p.steps,
    minRequests: p.minRequests,
    stepDuration: ms(p.stepDurationMs),
    maxStepDuration: ms(p.maxStepDurationMs ?? DEFAULT_POLICY.maxStepDurationMs),
    falseRollbackRate: p.falseRollbackRate ?? DEFAULT_POLICY.falseRollbackRate,
    autoPromote: p.autoPromote,
    autoRollback: p.autoRollback,
    businessDropMax: p.businessDropMax,
    businessFor: ms(p.businessForMs),
    confidence: p.confidence,
    businessMinOutcomes: p.businessMinOutcomes,
    shadow: p.shadow ? shadowToApi(p.shadow, ms) : null,
    warmup: p.warmup === null ? null : { duration: ms(p.warmup.durationMs), requests: p.warmup.requests },
    approvals: p.approvals ?? [],
    windows: windowsToApi(p.windows ?? null),
    thresholds: {
      errorRateDelta: p.thresholds.errorRateDelta,
      latencyP95DeltaMs: p.thresholds.latencyP95DeltaMs,
      errorRateMax: p.thresholds.errorRateMax,
      latencyP99Ratio: p.thresholds.latencyP99Ratio,
      latencyP99For: ms(p.thresholds.latencyP99ForMs),
      latencyP95Ratio: p.thresholds.latencyP95Ratio ?? null,
      tpotRatio: p.thresholds.tpotRatio ?? 1.2,
      outputTokensRatio: p.thresholds.outputTokensRatio ?? null,
    },
  };
}

import { KEY_GROUPS } from '../../../proxy/contract/key-groups.js';
import type { StepCounts, Stratum } from '../../model/progress.js';
import type { RuleEvidence } from '../../model/verdict.js';
import { groupDispersion } from '../evidence/clusters.js';
import { type RuleContext, withoutEvidence } from '../evidence/one-sample.js';
import { lnMixtureE, pFromLnE } from '../evidence/sequential.js';
import { fmtP, pct } from '../evidence/text.js';

/**
 * Sample ratio: does the canary get the share of routed requests its weight says? Every test
 * assumes the split is random; when it is not — a few heavy sticky keys, a client retrying on
 * one variant only, a proxy in front diverting requests, a proxy on a stale table — the
 * variants are compared on biased samples, and experimentation platforms check this first
 * (sample ratio mismatch). Always-valid: per step, a beta-binomial mixture (centred on the
 * weight, over several concentrations) against the weight's share, multiplied over steps.
 * Counted from the routing draws the proxies record as they decide (so how long answers take,
 * or who leaves first, does not move it); the proxy's own diversions (trip, in-flight cap,
 * forced variants) are not draws and are not in it. A mismatch holds the canary (never
 * advances or promotes) and never rolls it back. Sticky keys: users are the draws, not their
 * requests, so the spread of the key groups' shares inflates the variance as for errors
 * (evidence/clusters.ts), and traffic concentrated in a handful of keys is a mismatch of its
 * own: no split over so few can be random.
 */

/** False alarms per rollout at a correct split (a mismatch only holds, so it may be rare). */
export const SAMPLE_RATIO_ALPHA = 0.001;
const CONCENTRATIONS = [30, 300, 3000, 30_000];
/** Keyed traffic as concentrated as this few equal keys (or fewer) cannot be split at random. */
const FEW_KEYS = 4;
/** Keyed requests needed before their concentration is judged. */
const MIN_KEYED = 200;

const keyedIn = (c: StepCounts, g: number) => c.keyed?.[g] ?? 0;

/** The variance inflation of a stratum's canary share from its key groups (1 without keys). */
function shareDispersion(s: Stratum, n: number): number {
  const onCanary = Array.from({ length: KEY_GROUPS }, (_, g) => keyedIn(s.canary, g));
  const all = onCanary.map((c, g) => c + keyedIn(s.baseline, g));
  return groupDispersion(all, onCanary, n);
}

/** How many equal keys the keyed traffic is as concentrated as (Infinity with too little of it). */
function effectiveKeys(strata: Stratum[]): { keys: number; keyedShare: number } {
  const per = new Array(KEY_GROUPS).fill(0);
  let all = 0;
  for (const s of strata) {
    all += s.canary.n + s.baseline.n;
    for (let g = 0; g < KEY_GROUPS; g++) per[g] += keyedIn(s.canary, g) + keyedIn(s.baseline, g);
  }
  const t = per.reduce((a, b) => a + b, 0);
  if (t < MIN_KEYED) return { keys: Infinity, keyedShare: 0 };
  return { keys: t ** 2 / per.reduce((a, b) => a + b * b, 0), keyedShare: t / Math.max(all, 1) };
}

export function sampleRatioRule(ctx: RuleContext): RuleEvidence {
  const alpha = SAMPLE_RATIO_ALPHA;
  const split = ctx.strata.filter(
    // (A variant that got no draw at all has no count: zero, when the other side has one.)
    (s) => s.weight > 0 && s.weight < 100 && (s.canary.routed ?? s.baseline.routed) !== undefined,
  );
  const limit = "the canary's share of routed requests matches its weight";
  const current = split.at(-1);
  if (!current)
    return withoutEvidence(
      'sample_ratio',
      'skipped',
      limit,
      alpha,
      'no step split the traffic with routing draws counted: nothing to check',
    );
  let lnE = 0;
  for (const s of split) {
    const x = s.canary.routed ?? 0,
      n = x + (s.baseline.routed ?? 0);
    if (n === 0) continue;
    const w = s.weight / 100;
    const f = shareDispersion(s, n);
    lnE += lnMixtureE(
      x / f,
      n / f,
      w,
      CONCENTRATIONS.map((k) => ({ a: k * w, b: k * (1 - w) })),
    );
  }
  lnE = Math.max(0, lnE);
  const x = current.canary.routed ?? 0,
    n = x + (current.baseline.routed ?? 0);
  const share = n > 0 ? x / n : null;
  const saw = `the canary got ${pct(share)} of routed requests (${x}/${n}) at a ${current.weight}% weight`;
  const base = {
    rule: 'sample_ratio' as const,
    limit,
    canary: { estimate: share, low: null, high: null, n, events: x },
    baseline: { estimate: current.weight / 100, low: null, high: null, n, events: n - x },
    eValue: Math.exp(Math.min(lnE, 700)),
    pValue: pFromLnE(lnE),
    alpha,
  };
  const few = effectiveKeys(ctx.strata);
  if (few.keyedShare >= 0.5 && few.keys <= FEW_KEYS)
    return {
      ...base,
      status: 'warn',
      summary: `${saw}, and its sticky-key traffic is as concentrated as ${few.keys.toFixed(1)} equal keys: a split over so few users cannot be random, and the variants are compared on those few; decisions held`,
    };
  if (lnE >= Math.log(1 / alpha))
    return {
      ...base,
      status: 'warn',
      summary: `${saw}: p=${fmtP(base.pValue)} — sticky keys, a client or a proxy bias the split; decisions held`,
    };
  return { ...base, status: 'pass', summary: `${saw}: as the split should (p=${fmtP(base.pValue)})` };
}

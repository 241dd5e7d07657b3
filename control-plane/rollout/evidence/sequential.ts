/**
 * Always-valid (anytime-valid) sequential tests on counts. Every test here is an e-process:
 * a statistic E_t ≥ 0 with E_0 = 1 that, under its null hypothesis, stays a (super)martingale
 * however the data arrive. By Ville's inequality P(sup_t E_t ≥ 1/α) ≤ α, so a rule that
 * acts when E ≥ 1/α has a false-alarm rate of at most α no matter how often it looks — every
 * second, every 30 s, or at a data-dependent time. Bounds are the matching confidence
 * sequences: the set of parameter values no test has rejected.
 *
 * Two building blocks, both pure and deterministic:
 * - the beta-binomial mixture (Robbins; Howard et al. 2021, "Time-uniform, nonparametric,
 *   nonasymptotic confidence sequences"): a one-sample test of a Bernoulli rate against θ0,
 *   e.g. "the canary's error rate is above 5%" or "more than 5% of its requests are slower
 *   than the baseline's p95 + 100 ms";
 * - the stratified conditional ratio test: two-sample, "the canary's event rate is above the
 *   baseline's". Given that a request had an event (an error), the chance it was a canary
 *   request is the canary's share of traffic s when both rates are equal, whatever that
 *   common rate is, and s·r/(s·r + 1 − s) when the canary's rate is r times the baseline's.
 *   The test is a likelihood ratio on those labels, mixed over a grid of r. Each traffic step
 *   is a stratum with its own s, so evidence carries across steps and a base rate that drifts
 *   over the day does not bias it.
 */

const LN_2PI_HALF = 0.5 * Math.log(2 * Math.PI);
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7; about 15 significant digits). */
export function lgamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lgamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return LN_2PI_HALF + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

export const lbeta = (a: number, b: number) => lgamma(a) + lgamma(b) - lgamma(a + b);

/** x·ln(y) with 0·ln(0) = 0 (no hits is fine even against a rate of 0). */
const xlny = (x: number, y: number) => (x === 0 ? 0 : x * Math.log(y));

/** Beta(a, b) mixing distribution over the alternative rates. */
export interface BetaPrior {
  a: number;
  b: number;
}

/** The uniform prior: good power against gross departures (it is what catches a 50% failure in 3 requests). */
export const UNIFORM: BetaPrior = Object.freeze({ a: 1, b: 1 });

/** A prior with mean `mean` and the shape of Beta(1, b): mass near small rates, where latency shares live. */
export const priorWithMean = (mean: number): BetaPrior => ({
  a: 1,
  b: Math.max(1e-3, 1 / Math.min(0.999, Math.max(1e-6, mean)) - 1),
});

/**
 * ln E of the beta-binomial mixture against the point null θ0, after `x` hits in `n` trials.
 * It is a martingale under θ0; because the null's likelihood θ^x(1−θ)^(n−x) falls away from
 * x/n, rejecting θ0 only when x/n lies on the tested side is a valid one-sided test of
 * "rate ≤ θ0" (when x/n > θ0) or "rate ≥ θ0" (when x/n < θ0).
 */
export function lnMixtureE(
  x: number,
  n: number,
  theta0: number,
  prior: BetaPrior | readonly BetaPrior[] = UNIFORM,
): number {
  if (n <= 0) return 0;
  const lnNull = xlny(x, theta0) + xlny(n - x, 1 - theta0);
  // Several priors: their equally weighted average is itself a prior (and the e-value a mixture).
  const priors = Array.isArray(prior) ? prior : [prior as BetaPrior];
  const terms = priors.map((p) => lbeta(x + p.a, n - x + p.b) - lbeta(p.a, p.b));
  const top = Math.max(...terms);
  const lnMixture = top + Math.log(terms.reduce((a, t) => a + Math.exp(t - top), 0) / terms.length);
  return lnMixture - lnNull;
}

export type Side = 'above' | 'below';

/** ln E for the one-sided null on `side`'s opposite: 'above' tests "rate ≤ θ0", 'below' tests "rate ≥ θ0". */
export function lnOneSidedE(
  x: number,
  n: number,
  theta0: number,
  side: Side,
  prior: BetaPrior | readonly BetaPrior[] = UNIFORM,
): number {
  if (n <= 0) return 0;
  const rate = x / n;
  if (side === 'above' ? rate <= theta0 : rate >= theta0) return 0;
  return Math.max(0, lnMixtureE(x, n, theta0, prior));
}

/**
 * The one-sided confidence bound at level 1 − α (valid at every look): the largest rate
 * (side 'upper') or smallest (side 'lower') that the one-sided test has not rejected.
 */
export function rateBound(
  x: number,
  n: number,
  alpha: number,
  side: 'upper' | 'lower',
  prior: BetaPrior = UNIFORM,
): number {
  if (n <= 0) return side === 'upper' ? 1 : 0;
  const lnLimit = Math.log(1 / alpha);
  const rate = x / n;
  // The test of θ rejects once ln E(θ) ≥ lnLimit; ln E grows as θ moves away from the rate.
  let inside = rate;
  let outside = side === 'upper' ? 1 : 0;
  const rejects = (theta: number) => lnOneSidedE(x, n, theta, side === 'upper' ? 'below' : 'above', prior) >= lnLimit;
  if (!rejects(side === 'upper' ? 1 - 1e-12 : 1e-12)) return outside;
  for (let i = 0; i < 50; i++) {
    const mid = (inside + outside) / 2;
    if (rejects(mid)) outside = mid;
    else inside = mid;
  }
  return outside;
}

/** One stratum of a two-sample comparison: trials and events per variant while the split held. */
export interface StratumCounts {
  canary: { n: number; events: number };
  baseline: { n: number; events: number };
}

/** Rate ratios (canary ÷ baseline) the ratio test mixes over, equally weighted. */
export const RATIO_GRID = Object.freeze([1.5, 2, 3, 5, 10, 30, 100]);

/**
 * ln E of the stratified conditional ratio test of "the canary's event rate is at most the
 * baseline's" (see the module comment). Strata where either side had no traffic say nothing
 * and are skipped. Under the null the label of each event is Bernoulli(s); the binomial
 * likelihood ratio is also conservative when the counts are fixed (sampling without
 * replacement is dominated in convex order, Hoeffding 1963).
 */
export function lnRatioE(strata: StratumCounts[], grid: readonly number[] = RATIO_GRID): number {
  const ln = new Array<number>(grid.length).fill(0);
  for (const st of strata) {
    const nc = st.canary.n,
      nb = st.baseline.n;
    if (nc <= 0 || nb <= 0) continue;
    const xc = st.canary.events,
      xb = st.baseline.events;
    if (xc + xb === 0) continue;
    const s = nc / (nc + nb);
    for (let j = 0; j < grid.length; j++) {
      const theta = (grid[j] * s) / (grid[j] * s + 1 - s);
      ln[j] += xlny(xc, theta / s) + xlny(xb, (1 - theta) / (1 - s));
    }
  }
  // ln( Σ_j e^{ln_j} / J ), computed without overflow.
  const top = Math.max(...ln);
  let sum = 0;
  for (const v of ln) sum += Math.exp(v - top);
  return Math.max(0, top + Math.log(sum / grid.length));
}

/** The always-valid p-value that goes with an e-value: min(1, 1/E). */
export const pFromLnE = (lnE: number) => Math.min(1, Math.exp(-lnE));

/**
 * The smallest factor f ≥ 1 by which the data, scaled at their current rates, would make
 * `passes(f)` true — how much more traffic a decision needs if the rates hold. Infinity
 * when no amount would do (e.g. the estimate itself is past the limit).
 */
export function scaleToPass(passes: (f: number) => boolean, maxFactor = 2 ** 24): number {
  if (passes(1)) return 1;
  let lo = 1,
    hi = 2;
  while (!passes(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > maxFactor) return Infinity;
  }
  for (let i = 0; i < 30 && hi - lo > 1e-3 * lo; i++) {
    const mid = (lo + hi) / 2;
    if (passes(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

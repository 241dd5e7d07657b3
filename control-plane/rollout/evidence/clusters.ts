import { KEY_GROUPS } from '../../../proxy/contract/key-groups.js';
import type { StepCounts } from '../../model/progress.js';

/**
 * Errors clustered by user. Requests routed by a sticky key are the same users' again and
 * again, and users' own error rates differ (one whose inputs the model cannot handle fails a
 * sixth of their requests on either version), so a variant's error count varies more than
 * independent draws would: which users it happens to get moves its rate. The proxy counts keyed
 * requests in KEY_GROUPS groups of whole users (a hash of the key, independent of its routing
 * bucket); the groups are independent and alike, so the spread of their error rates estimates
 * that variance directly (Pearson's dispersion, as a quasi-binomial model reads it). Dividing a
 * variant's counts by it makes the error tests treat its evidence as the independent draws it
 * is worth: a cluster-robust test, exact however many keys there are.
 */

/** Below this many keyed requests (or two non-empty groups) the spread says nothing: 1. */
const MIN_KEYED = 50;

/**
 * Pearson's dispersion (≥ 1) of a count over the key groups: group g has `trials[g]` keyed
 * requests, `hits[g]` of them with the event. Unkeyed requests (`total` less the keyed ones)
 * are independent draws, so only the keyed share of the count is inflated.
 */
export function groupDispersion(trials: readonly number[], hits: readonly number[], total: number): number {
  let n = 0,
    x = 0,
    groups = 0;
  for (let g = 0; g < KEY_GROUPS; g++) {
    n += trials[g];
    x += hits[g];
    if (trials[g] > 0) groups++;
  }
  if (n < MIN_KEYED || groups < 2 || x === 0 || x === n) return 1;
  const p = x / n;
  let chi2 = 0;
  for (let g = 0; g < KEY_GROUPS; g++)
    if (trials[g] > 0) chi2 += (hits[g] - trials[g] * p) ** 2 / (trials[g] * p * (1 - p));
  return Math.max(1, 1 + (chi2 / (groups - 1) - 1) * (n / Math.max(n, total)));
}

/** The variance inflation (≥ 1) of `c`'s error count from its keyed requests; 1 without any. */
export function errorDispersion(c: StepCounts): number {
  const k = c.keyed;
  return k ? groupDispersion(k.slice(0, KEY_GROUPS), k.slice(KEY_GROUPS), c.n) : 1;
}

/** Each variant's inflation: its own users make its count noisy, not the other's. */
export interface ErrorInflation {
  canary: number;
  baseline: number;
}
export const errorInflation = (canary: StepCounts, baseline: StepCounts): ErrorInflation => ({
  canary: errorDispersion(canary),
  baseline: errorDispersion(baseline),
});
export const NO_INFLATION: ErrorInflation = Object.freeze({ canary: 1, baseline: 1 });

/** A variant's requests and errors as independent draws: divided by the inflation. */
export const effective = (c: { n: number; errors: number }, inflation: number) => ({
  n: c.n / inflation,
  events: c.errors / inflation,
});

/** What a verdict says when users' clustering discounted the error evidence (empty when it did not). */
export function clusteringText(f: ErrorInflation): string {
  const side = (name: string, x: number) => (x < 1.05 ? [] : [`${name} ×${x.toFixed(1)}`]);
  const sides = [...side('canary', f.canary), ...side('baseline', f.baseline)];
  if (sides.length === 0) return '';
  // The inflation grows with each user's requests: past ~2×, more time adds little, more users do.
  const advice =
    f.canary >= 2 ? '; more requests from the same users add little: a higher weight brings more users' : '';
  return ` — sticky keys: errors cluster by user (variance ${sides.join(', ')} that of independent requests), so the error tests weigh each request that much less${advice}`;
}

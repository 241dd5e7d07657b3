import type { RouteSettings } from '../contract/route-table.js';

/** "auto" hedging never fires sooner than this. */
export const MIN_HEDGE_MS = 250;
/** "auto" hedges after this many times the baseline's live p99. */
export const HEDGE_P99_FACTOR = 3;
/** Baseline latencies kept per deployment for the live p99. */
const WINDOW = 512;
/** Fewer samples than this: no live p99 yet, so "auto" does not hedge (retry on failure still does). */
const MIN_SAMPLES = 20;

/**
 * The baseline's live p99 per deployment, from its last WINDOW answered requests: a ring
 * written on the hot path (one array store), the p99 recomputed at most once a second.
 */
export class LatencyTracker {
  private readonly rings = new Map<string, { values: Float64Array; n: number; p99: number | null; at: number }>();

  observe(deployment: string, ms: number): void {
    let r = this.rings.get(deployment);
    if (!r) {
      r = { values: new Float64Array(WINDOW), n: 0, p99: null, at: 0 };
      this.rings.set(deployment, r);
    }
    r.values[r.n++ % WINDOW] = ms;
  }

  p99(deployment: string, now = Date.now()): number | null {
    const r = this.rings.get(deployment);
    if (!r || r.n < MIN_SAMPLES) return null;
    if (now - r.at >= 1000) {
      const sorted = Float64Array.from(r.values.subarray(0, Math.min(r.n, WINDOW))).sort();
      r.p99 = sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)];
      r.at = now;
    }
    return r.p99;
  }
}

/** How long a canary request runs before it is also sent to the baseline; null: no hedging. */
export function hedgeDelay(
  settings: RouteSettings | undefined,
  tracker: LatencyTracker,
  deployment: string,
  now = Date.now(),
): number | null {
  const h = settings?.hedgeCanaryAfter ?? 'auto';
  if (h === 'off') return null;
  if (typeof h === 'number') return h;
  const p99 = tracker.p99(deployment, now);
  return p99 === null ? null : Math.max(MIN_HEDGE_MS, HEDGE_P99_FACTOR * p99);
}

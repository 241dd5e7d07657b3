import type { OutcomeStats } from '../../model/outcomes.js';

/**
 * The business-metric rule: is the canary's outcome (conversion, correctness, revenue…)
 * more than `businessDropMax` below the baseline's, with `confidence`, and for how long?
 *
 * The analysis looks every 30 seconds, so a fixed-sample test (a t-test at 95%) would be
 * asked hundreds of times and raise false alarms far more than 5% of the time. Instead this
 * is a mixture sequential probability ratio test (mSPRT, Johari et al., "Always Valid
 * Inference"): its p-value stays valid however often it is looked at, so the false-alarm
 * rate holds under continuous monitoring. It is pure and deterministic.
 */

export interface BusinessTest {
  /** Canary mean minus (1 − drop) × baseline mean: negative means "dropped by more than drop". */
  estimate: number;
  /** Always-valid p-value for "the canary is not worse than (1 − drop) × baseline". */
  pValue: number;
  /** Normal-approximation interval of the relative change canary/baseline − 1 at `confidence`. */
  relativeChange: { value: number; low: number; high: number } | null;
}

const Z: Record<string, number> = { '0.9': 1.6449, '0.95': 1.96, '0.99': 2.5758 };
function zFor(confidence: number): number {
  return Z[String(confidence)] ?? Math.sqrt(2) * inverseErf(confidence);
}

// Winitzki's approximation, enough for interval widths.
function inverseErf(x: number): number {
  const a = 0.147;
  const ln = Math.log(1 - x * x);
  const t = 2 / (Math.PI * a) + ln / 2;
  return Math.sign(x) * Math.sqrt(Math.sqrt(t * t - ln / a) - t);
}

export function businessTest(
  baseline: OutcomeStats,
  canary: OutcomeStats,
  drop: number,
  confidence: number,
): BusinessTest {
  const k = 1 - drop;
  const estimate = canary.mean - k * baseline.mean;
  // Variance of the estimate; a floor keeps all-0 or all-1 outcomes from dividing by zero.
  const floor = 1e-12;
  const v = Math.max(
    floor,
    canary.variance / Math.max(1, canary.n) + (k * k * baseline.variance) / Math.max(1, baseline.n),
  );
  // Mixing variance: the size of effect the test is tuned to find, drop × baseline mean.
  const tau2 = Math.max(floor, (drop * Math.max(baseline.mean, Math.sqrt(baseline.variance))) ** 2);
  // One-sided: only evidence of a drop counts.
  const lambda =
    estimate >= 0 ? 0 : Math.sqrt(v / (v + tau2)) * Math.exp((tau2 * estimate * estimate) / (2 * v * (v + tau2)));
  const pValue = Math.min(1, lambda > 0 ? 1 / lambda : 1);
  let relativeChange: BusinessTest['relativeChange'] = null;
  if (baseline.mean !== 0 && baseline.n > 1 && canary.n > 1) {
    const ratio = canary.mean / baseline.mean;
    // Delta method for the ratio of two independent means.
    const se =
      Math.abs(ratio) *
      Math.sqrt(
        canary.variance / (canary.n * canary.mean ** 2 || floor) +
          baseline.variance / (baseline.n * baseline.mean ** 2),
      );
    const z = zFor(confidence);
    relativeChange = { value: ratio - 1, low: ratio - 1 - z * se, high: ratio - 1 + z * se };
  }
  return { estimate, pValue, relativeChange };
}

/** Mean and sample variance of raw outcomes (tests and simulations). */
export function summarizeOutcomes(values: number[]): OutcomeStats {
  const n = values.length;
  if (n === 0) return { n: 0, mean: 0, variance: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n < 2 ? 0 : values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { n, mean, variance };
}

/** How evidence is written for people: rates, durations, p-values, what a decision still needs. */

export const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);

export const ms = (x: number | null) => (x === null ? '-' : `${x.toFixed(1)}ms`);

export const dur = (s: number) =>
  s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;

/**
 * Two significant digits, so a limit such as 0.0025 is shown as itself: three decimals made it
 * "0.003" and a p-value of 0.0028 read "p=0.003 ≤ 0.003" although it did not roll back.
 */
export const fmtP = (p: number) => (p >= 0.001 ? String(Number(p.toPrecision(2))) : p.toExponential(1));

export const needsText = (n: { requests: number | null; seconds: number | null }) =>
  n.requests === null
    ? ' (not expected at the current rate)'
    : `; needs ≈ ${n.requests} more canary requests${n.seconds !== null ? ` (≈ ${dur(n.seconds)})` : ''}`;

/**
 * Durations in config and the API are strings like "30s", "5m", "250ms", "1h";
 * a bare number (or numeric string) means milliseconds. See DESIGN.md §2.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export class DurationError extends Error {
  readonly code = 'BAD_DURATION';
}

/** Parses a duration to milliseconds; throws DurationError with the offending value. */
export function parseDuration(value: unknown, what = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
  } else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
    if (m) return Number(m[1]) * UNIT_MS[m[2] ?? 'ms'];
  }
  throw new DurationError(
    `${what}: expected a duration like "30s", "5m", "250ms" or a number of ms, got ${JSON.stringify(value)}`,
  );
}

/** Formats milliseconds the way a person reads them back ("1.5s", "5m"). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)}m`;
  return `${+(ms / 3_600_000).toFixed(1)}h`;
}

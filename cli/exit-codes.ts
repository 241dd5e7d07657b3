import { parseDuration } from '../common/duration.js';
import { UsageError } from './args.js';
import { ApiError } from './client.js';

/**
 * The CLI's exit codes, one table for every command (a CI pipeline branches on them):
 * `wait` ends 0 when the canary was promoted and 1 when it was rolled back.
 */
export const EXIT = {
  ok: 0,
  /** The API refused (or `wait`: rolled back; `load`: requests failed). */
  failed: 1,
  usage: 2,
  /** `wait`: still rolling out at --timeout. */
  timedOut: 3,
  /** The control plane did not answer (`wait`: through its whole --timeout). */
  unreachable: 4,
  /** No such deployment (or version). */
  notFound: 5,
} as const;

/** The exit code for an error a command threw. */
export function exitCodeOf(err: Error & { code?: string }, usage: boolean): number {
  if (usage) return EXIT.usage;
  if (err instanceof ApiError && err.code === 'UNREACHABLE') return EXIT.unreachable;
  if (err instanceof ApiError && err.status === 404) return EXIT.notFound;
  return EXIT.failed;
}

/** A CLI duration: "5s", "2m", "250ms", "1h"; a bare number is seconds (unlike the API, where it is ms). */
export function cliDuration(v: string | boolean | undefined, flag: string, fallback: string): number {
  const raw = typeof v === 'string' ? v : fallback;
  try {
    return parseDuration(/^\s*\d+(\.\d+)?\s*$/.test(raw) ? `${raw.trim()}s` : raw, `--${flag}`);
  } catch {
    throw new UsageError(
      `--${flag}: expected a duration like 30s, 5m or 250ms (a bare number is seconds), got ${JSON.stringify(raw)}`,
    );
  }
}

import { parseDuration } from '../../common/duration.js';
import { CanaryError } from '../../common/errors.js';

/** The checks every policy field goes through: a clear BAD_REQUEST naming the field. */
export const bad = (msg: string) => new CanaryError('BAD_REQUEST', `policy.${msg}`);

export function dur(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  try {
    return parseDuration(v, name);
  } catch (e) {
    throw bad((e as Error).message);
  }
}

export function num(v: unknown, name: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw bad(`${name}: expected a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

export function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw bad(`${name}: expected true or false`);
  return v;
}

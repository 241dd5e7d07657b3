import { parseArgs } from 'node:util';
import { ApiClient } from './client.js';
/** Parsing a client command's arguments and options, with usage errors (exit 2) that say what is wrong. */

export class UsageError extends Error {}

export function parse(
  rest: string[],
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
  positionals: string[],
) {
  const { values, positionals: pos } = parseArgs({
    args: rest,
    options: { json: { type: 'boolean' }, ...options },
    allowPositionals: true,
    strict: true,
  });
  if (pos.length < positionals.length)
    throw new UsageError(
      `missing ${positionals
        .slice(pos.length)
        .map((p) => `<${p}>`)
        .join(' ')}`,
    );
  if (pos.length > positionals.length)
    throw new UsageError(`unexpected argument ${JSON.stringify(pos[positionals.length])}`);
  return { values: values as Record<string, string | boolean | undefined>, args: pos };
}

export function jsonOption(v: string | boolean | undefined, name: string): unknown {
  if (typeof v !== 'string') return undefined;
  try {
    return JSON.parse(v);
  } catch {
    throw new UsageError(`--${name}: not valid JSON: ${v}`);
  }
}

export function num(v: string | boolean | undefined, name: string): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

export const enc = encodeURIComponent;

/**
 * What a change acts on: --canary VERSION (the body's `canary`: 409 if another one runs) and
 * --if-match REVISION (the revision `canary status` showed: 412 if it changed since).
 */
export const PRECONDITION_OPTIONS: Record<string, { type: 'string' }> = {
  canary: { type: 'string' },
  'if-match': { type: 'string' },
};

export const canaryOf = (v: { canary?: string | boolean }) =>
  typeof v.canary === 'string' ? { canary: v.canary } : {};

export function ifMatchOf(v: { 'if-match'?: string | boolean }): Record<string, string> {
  const r = v['if-match'];
  if (typeof r !== 'string') return {};
  if (!/^(W\/)?"?\d+"?$/.test(r))
    throw new UsageError(`--if-match: expected a revision number as shown by canary status, got ${JSON.stringify(r)}`);
  return { 'if-match': /^\d+$/.test(r) ? `"${r}"` : r };
}

export function client(): ApiClient {
  return new ApiClient(process.env.CANARY_API_URL ?? 'http://127.0.0.1:8090', process.env.CANARY_API_TOKEN || null);
}

export type Out = (s: string) => void;

export const out: Out = (s) => process.stdout.write(`${s}\n`);

/** Prints `data` as JSON with --json, otherwise as `human()` renders it. */
export const print = (json: boolean | string | undefined, data: unknown, human: () => string) =>
  out(json ? JSON.stringify(data, null, 2) : human());

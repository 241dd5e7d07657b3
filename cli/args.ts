import { parseArgs } from 'node:util';
import { ApiClient } from './client.js';
/** Parsing a client command's arguments and options, with usage errors (exit 2) that say what is wrong. */

export class UsageError extends Error {}

/** Edit distance between two short strings (a flag and a typo of it). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/** The closest of `known` to `typed`, when it is close enough to be a typo. */
export function didYouMean(typed: string, known: string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = distance(typed, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== null && bestD <= Math.max(2, Math.floor(typed.length / 3)) ? best : null;
}

/** node's parseArgs errors, said for a person: the flag, and the one they probably meant. */
export function optionError(err: Error & { code?: string }, flags: string[]): string {
  const typed = /'(--?[^'=]+)/.exec(err.message)?.[1];
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && typed) {
    const near = didYouMean(typed.replace(/^-+/, ''), flags);
    return `unknown option ${typed}${near ? `; did you mean --${near}?` : ''}`;
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && typed) return `${typed}: ${err.message.split('.')[0]}`;
  return err.message;
}

export function parse(
  rest: string[],
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
  positionals: string[],
) {
  const all = { json: { type: 'boolean' as const }, ...options };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: all, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(optionError(err as Error & { code?: string }, Object.keys(all)));
  }
  const { values, positionals: pos } = parsed;
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

/**
 * Warns (on stderr) when a model server URL just registered does not accept a connection: the
 * change is made, but a canary there would fail every request until the server is up.
 */
export async function warnIfDown(url: string): Promise<void> {
  const { connect } = await import('node:net');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return;
  }
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const why = await new Promise<string | null>((resolve) => {
    const s = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port, timeout: 2000 });
    s.once('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('no answer in 2 s');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  if (why)
    process.stderr.write(
      `canary: warning: ${url} does not answer from here (${why}); requests sent to it fail until it does\n`,
    );
}

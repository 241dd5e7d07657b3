/**
 * How a shadow's answer is compared with the baseline's (pure). JSON bodies compare the
 * values at the named JSON Pointers (RFC 6901), or the whole document when none are named:
 * numbers within a tolerance (absolute or relative, whichever is looser), everything else
 * (class labels, strings, booleans, null) exactly, arrays and objects element by element.
 * Bodies that are not JSON compare byte for byte.
 */
export interface CompareSpec {
  /** JSON Pointers of the fields to compare, e.g. ["/prediction"]; empty: the whole body. */
  fields: string[];
  /** Numbers agree when |a − b| ≤ tolerance … */
  tolerance: number;
  /** … or |a − b| ≤ relativeTolerance × max(|a|, |b|). */
  relativeTolerance: number;
}

export const DEFAULT_COMPARE: Readonly<CompareSpec> = Object.freeze({ fields: [], tolerance: 0, relativeTolerance: 0 });

export interface Answer {
  status: number;
  body: Buffer;
}

export interface Comparison {
  agreed: boolean;
  /** The compared values, short and printable, for the disagreement examples. */
  baseline: string;
  canary: string;
}

/** Longest compared value kept in an example. */
export const SHOWN_CHARS = 200;

export class PointerError extends Error {
  readonly code = 'BAD_JSON_POINTER';
}

/** Validates a JSON Pointer and splits it into unescaped tokens ("" is the whole document). */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (pointer[0] !== '/') throw new PointerError(`JSON Pointer ${JSON.stringify(pointer)} must start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => {
      if (/~(?![01])/.test(t))
        throw new PointerError(`JSON Pointer ${JSON.stringify(pointer)}: "~" must be followed by 0 or 1`);
      return t.replace(/~1/g, '/').replace(/~0/g, '~');
    });
}

const MISSING = Symbol('missing');

function resolve(doc: unknown, tokens: string[]): unknown {
  let cur: unknown = doc;
  for (const t of tokens) {
    if (Array.isArray(cur) && /^(0|[1-9]\d*)$/.test(t) && Number(t) < cur.length) cur = cur[Number(t)];
    else if (cur !== null && typeof cur === 'object' && !Array.isArray(cur) && Object.hasOwn(cur, t))
      cur = (cur as Record<string, unknown>)[t];
    else return MISSING;
  }
  return cur;
}

function equal(a: unknown, b: unknown, spec: CompareSpec): boolean {
  if (typeof a === 'number' && typeof b === 'number') {
    if (a === b) return true;
    const diff = Math.abs(a - b);
    return diff <= spec.tolerance || diff <= spec.relativeTolerance * Math.max(Math.abs(a), Math.abs(b));
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => equal(x, b[i], spec));
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a),
      kb = Object.keys(b);
    return (
      ka.length === kb.length &&
      ka.every(
        (k) => Object.hasOwn(b, k) && equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], spec),
      )
    );
  }
  return a === b;
}

const clip = (s: string) => (s.length > SHOWN_CHARS ? `${s.slice(0, SHOWN_CHARS - 1)}…` : s);
const show = (v: unknown) => clip(v === MISSING ? '(missing)' : JSON.stringify(v));

function parseJson(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

/**
 * Compares two answers to the same request. A different status is a disagreement (a canary
 * that refuses inputs the baseline accepts disagrees with it); otherwise the bodies compare.
 */
export function compareAnswers(baseline: Answer, canary: Answer, spec: CompareSpec): Comparison {
  if (baseline.status !== canary.status)
    return { agreed: false, baseline: `HTTP ${baseline.status}`, canary: `HTTP ${canary.status}` };
  const b = parseJson(baseline.body),
    c = parseJson(canary.body);
  if (!b.ok || !c.ok) {
    const agreed = baseline.body.equals(canary.body);
    const text = (x: Buffer) => clip(x.toString('utf8').replace(/[^\x20-\x7e]/g, '.'));
    return { agreed, baseline: text(baseline.body), canary: text(canary.body) };
  }
  const pointers = spec.fields.length ? spec.fields : [''];
  const bv = pointers.map((p) => resolve(b.value, parsePointer(p)));
  const cv = pointers.map((p) => resolve(c.value, parsePointer(p)));
  const agreed = bv.every((v, i) => v !== MISSING && cv[i] !== MISSING && equal(v, cv[i], spec));
  const values = (vs: unknown[]) => (vs.length === 1 ? show(vs[0]) : clip(vs.map(show).join(', ')));
  return { agreed, baseline: values(bv), canary: values(cv) };
}

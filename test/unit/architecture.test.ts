import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

// The layout as rules a change cannot quietly break (DESIGN.md §1, STYLE.md): which rooms may
// import which, and how large a hand-written file may grow.

const ROOT = path.resolve(import.meta.dirname, '../..');
const SOURCE_DIRS = ['proxy', 'control-plane', 'cli', 'common'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(ROOT, dir))) {
    const rel = path.join(dir, name);
    if (name === 'generated' || name === 'node_modules') continue;
    if (statSync(path.join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

const files = SOURCE_DIRS.flatMap(sources);

/** Every relative import of a file, resolved to a path from the repository root. */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) =>
    path.join(path.dirname(file), m[1]).replace(/\.js$/, '.ts'),
  );
}

const inside = (file: string, dir: string) => file === dir || file.startsWith(`${dir}/`);

test('the data plane imports nothing of the control plane or the CLI', () => {
  const bad = files
    .filter((f) => inside(f, 'proxy'))
    .flatMap((f) =>
      importsOf(f)
        .filter((i) => inside(i, 'control-plane') || inside(i, 'cli'))
        .map((i) => `${f} → ${i}`),
    );
  assert.deepEqual(bad, []);
});

test('the control plane imports only the proxy contract and its entry point', () => {
  const bad = files
    .filter((f) => inside(f, 'control-plane'))
    .flatMap((f) =>
      importsOf(f)
        .filter((i) => inside(i, 'proxy') && !inside(i, 'proxy/contract') && i !== 'proxy/main.ts')
        .map((i) => `${f} → ${i}`),
    );
  assert.deepEqual(bad, []);
});

test('lower rooms never import higher ones: model and state know nothing of rollout, publishing or the API', () => {
  const higher: Record<string, string[]> = {
    'control-plane/model': [
      'control-plane/rollout',
      'control-plane/state',
      'control-plane/publish',
      'control-plane/api',
    ],
    'control-plane/state': ['control-plane/rollout', 'control-plane/publish', 'control-plane/api'],
    'control-plane/publish': ['control-plane/rollout', 'control-plane/api'],
    'control-plane/rollout': ['control-plane/api'],
    'control-plane/metrics': ['control-plane/rollout', 'control-plane/xds', 'control-plane/api'],
  };
  const bad = files.flatMap((f) => {
    const room = Object.keys(higher).find((r) => inside(f, r));
    if (!room) return [];
    return importsOf(f)
      .filter((i) => higher[room].some((h) => inside(i, h)))
      .map((i) => `${f} → ${i}`);
  });
  assert.deepEqual(bad, []);
});

test('every rule of the verdict has a file of its own, composed by decide()', () => {
  const rules = readdirSync(path.join(ROOT, 'control-plane/rollout/rules')).filter((f) => f.endsWith('.ts'));
  const decide = readFileSync(path.join(ROOT, 'control-plane/rollout/decide.ts'), 'utf8');
  for (const r of rules) assert.match(decide, new RegExp(`from './rules/${r.replace('.ts', '.js')}'`), r);
});

test('no hand-written source file is over 400 lines, and at most 1% of source lines are over 120 characters', () => {
  const long = files
    .map((f) => ({ f, lines: readFileSync(path.join(ROOT, f), 'utf8').split('\n') }))
    .filter(({ lines }) => lines.length > 400)
    .map(({ f, lines }) => `${f}: ${lines.length}`);
  assert.deepEqual(long, []);
  let total = 0;
  let wide = 0;
  for (const f of files) {
    for (const line of readFileSync(path.join(ROOT, f), 'utf8').split('\n')) {
      total++;
      if (line.length > 120) wide++;
    }
  }
  assert.ok(wide / total <= 0.01, `${wide} of ${total} lines over 120 characters`);
});

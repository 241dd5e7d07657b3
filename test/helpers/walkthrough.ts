/**
 * The README's walkthrough as a program: its `sh` blocks run verbatim and each `$ command` of
 * its transcripts runs with its output captured, in one bash session, so the test compares what
 * the README shows with what the commands print today, and `npm run readme:walkthrough` can
 * rewrite the transcripts from a real run.
 *
 * Two things differ from a user's terminal, on purpose: the fixed ports (8001, 8080, …) are
 * replaced by free ones, so the walkthrough runs beside anything else on the machine, and the
 * output of background commands (`… &`) goes to a log file instead of between the commands'.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CANARY_BIN } from '../../common/processes.js';

export type Step = { kind: 'sh'; script: string } | { kind: 'command'; command: string; expected: string[] };

/** The ports the walkthrough names, in the order the README introduces them. */
const FIXED_PORTS = [8001, 8002, 8003, 8004, 8080, 8090] as const;

/** The steps of the README section headed `## Walkthrough`, up to the next `## ` heading. */
export function walkthroughSteps(readme: string): Step[] {
  const start = readme.indexOf('\n## Walkthrough');
  if (start < 0) throw new Error('the README has no "## Walkthrough" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const steps: Step[] = [];
  for (const block of section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
    const [, lang, body] = block;
    if (lang === 'sh') {
      steps.push({ kind: 'sh', script: body });
      continue;
    }
    if (lang !== '') continue;
    for (const line of body.replace(/\n$/, '').split('\n')) {
      if (line.startsWith('$ ')) steps.push({ kind: 'command', command: line.slice(2), expected: [] });
      else {
        const last = steps.at(-1);
        if (last?.kind !== 'command') throw new Error(`a transcript line before any "$ " command: ${line}`);
        last.expected.push(line);
      }
    }
  }
  return steps;
}

/**
 * A free port with as many digits as the README's (4), so tables line up the same when the
 * ports are written back.
 */
async function freePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 2000 + Math.floor(Math.random() * 8000);
    if (taken.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer().listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (free) return port;
  }
}

export interface WalkthroughRun {
  /** Each command's output lines, in the order of the commands. */
  outputs: { command: string; lines: string[]; exitCode: number }[];
  /** What the background commands printed. */
  backgroundLog: string;
  /** Text with the free ports written back as the README's fixed ones. */
  asWritten: (text: string) => string;
}

/**
 * Runs the steps in a fresh directory (its own `.canary-data`, `npx canary` resolving to this
 * checkout) with no Redis or PostgreSQL settings, as on a new machine, and stops every process
 * it started.
 */
export async function runWalkthrough(steps: Step[], timeoutMs = 600_000): Promise<WalkthroughRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-walkthrough-'));
  await writeFile(path.join(dir, 'package.json'), '{"private": true}\n');
  await mkdir(path.join(dir, 'node_modules', '.bin'), { recursive: true });
  await symlink(CANARY_BIN, path.join(dir, 'node_modules', '.bin', 'canary'));
  const ports = new Map<number, number>();
  for (const p of FIXED_PORTS) ports.set(p, await freePort(new Set(ports.values())));
  const local = (text: string) =>
    text.replace(new RegExp(`\\b(${FIXED_PORTS.join('|')})\\b`, 'g'), (p) => String(ports.get(Number(p))));
  const log = path.join(dir, 'background.log');
  const script = [
    'set -u',
    ...steps.map((s, i) =>
      s.kind === 'sh'
        ? local(s.script).replace(/&(\s*(#.*)?)$/gm, `>>${log} 2>&1 &$1`)
        : `printf '\\n@@begin ${i}\\n'; ${local(s.command)} 2>&1; printf '\\n@@end ${i} %s\\n' $?`,
    ),
  ].join('\n');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CANARY_') && k !== 'DATABASE_URL' && k !== 'REDIS_URL' && k !== 'LOG_LEVEL') env[k] = v;
  }
  Object.assign(env, {
    NO_COLOR: '1',
    CANARY_PROXY_PORT: String(ports.get(8080)),
    CANARY_API_PORT: String(ports.get(8090)),
    CANARY_API_URL: `http://127.0.0.1:${ports.get(8090)}`,
    CANARY_ADMIN_PORT: '0',
    CANARY_XDS_PORT: '0',
  });
  const child = spawn('bash', ['-c', script], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => {
    out += c;
  });
  child.stderr.on('data', (c) => {
    out += c;
  });
  const stopAll = () => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {}
  };
  const timer = setTimeout(stopAll, timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  // The script's last line ends; its background servers are still up: stop the whole group.
  stopAll();
  const backgroundLog = await readFile(log, 'utf8').catch(() => '');
  const outputs: WalkthroughRun['outputs'] = [];
  steps.forEach((s, i) => {
    if (s.kind !== 'command') return;
    const m = out.match(new RegExp(`\\n@@begin ${i}\\n([\\s\\S]*?)\\n@@end ${i} (\\d+)\\n`));
    if (!m) throw new Error(`"${s.command}" did not run (script exit ${code}):\n${out}\n${backgroundLog}`);
    const lines = m[1].replace(/\r/g, '').split('\n');
    if (lines[0] === '') lines.shift(); // the marker's own newline when the output was empty
    outputs.push({ command: s.command, lines, exitCode: Number(m[2]) });
  });
  const back = new Map([...ports].map(([fixed, free]) => [String(free), String(fixed)]));
  const asWritten = (text: string) => text.replace(/:(\d{4,5})\b/g, (m, p) => (back.has(p) ? `:${back.get(p)}` : m));
  return { outputs, backgroundLog, asWritten };
}

/** A row of `canary versions`: its HEALTHY column says whether the prober has been round yet. */
const VERSION_ROW = /^(\s*\S+\s+(?:registered|canary|serving|retired|rolled_back)\s+)(?:yes|no|-)(\s+\S+:\/\/)/;

/**
 * A line's shape: what stays the same from run to run. Times, ids, hashes, numbers and quoted
 * labels are masked, and a version's health (probed on its own schedule, so a command typed
 * at once may come before the first probe); runs of spaces (table alignment) become one.
 */
export function shape(line: string): string {
  if (/^exit \d+$/.test(line)) return line; // an exit code is the outcome, not a measurement
  return line
    .replace(VERSION_ROW, '$1<health>$2')
    .replace(/\b[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\b/g, '<http-date>')
    .replace(/\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/\b[0-9a-f]{12}\b/g, '<hash>')
    .replace(/"[a-z]+"/g, '"<label>"')
    .replace(/\d+(\.\d+)?(e[-+]?\d+)?/g, 'N')
    .replace(/[█░]+/g, '<bar>')
    .replace(/\s+/g, ' ')
    .trim();
}

/** A line cut short with an ellipsis matches any line that begins the same way. */
function sameShape(e: string, a: string): boolean {
  if (e === a) return true;
  const cut = (s: string) => /(\.\.\.|…)$/.test(s);
  if (!cut(e) && !cut(a)) return false;
  // Drop the ellipsis and the word it cut through, then compare the common beginning.
  const head = (s: string) => (cut(s) ? s.replace(/(\.\.\.|…)$/, '').replace(/\S*$/, '') : s);
  const [short, long] = [head(e), head(a)].sort((x, y) => x.length - y.length);
  return short.length >= 20 && long.startsWith(short);
}

/**
 * Lines about a rule's evidence (its row, its reason, the reasons a canary was rolled back for)
 * vary from run to run: which rules had their evidence when the canary was rolled back depends on
 * how fast the machine sent the traffic.
 */
const VARIES = /^([a-z]+(_[a-zN0-9]+)+:? |last )/; // N: a masked digit (latency_pN)

/** Where a rollback's reason begins in a line (`wait`, `history`): which rule gave it varies too. */
const REASON = / (canary error rate|agreement|share of|a proxy took) .*$/;

/** What a line is about: a rule's or field's name, or the line with its reason left out. */
const kind = (shaped: string) => (VARIES.test(shaped) ? shaped.split(' ')[0] : shaped.replace(REASON, ' <reason>'));

export interface Comparison {
  /** README lines found with the same shape. */
  exact: number;
  /** README lines found only as the same kind of line: a rule's row with another status, a reason more. */
  loose: string[];
  /** README lines with nothing like them in the output. */
  missing: string[];
}

/**
 * Every line the README shows must appear, in its order, in what the command printed (a run may
 * print more: another event, one more reason). A line is found exactly when its shape is the
 * same; else, for a line about a rule's evidence (VARIES) or one carrying a rollback's reason,
 * loosely when a line of the same kind is there.
 */
export function compareOutput(expected: string[], actual: string[]): Comparison {
  const result: Comparison = { exact: 0, loose: [], missing: [] };
  const shaped = actual.map(shape);
  let at = 0;
  for (const line of expected) {
    const e = shape(line);
    if (e === '') continue;
    const exact = shaped.findIndex((a, i) => i >= at && sameShape(e, a));
    if (exact >= 0) {
      result.exact++;
      at = exact + 1;
      continue;
    }
    const loose = VARIES.test(e) || REASON.test(e) ? shaped.findIndex((a, i) => i >= at && kind(a) === kind(e)) : -1;
    if (loose >= 0) {
      result.loose.push(line);
      at = loose + 1;
    } else result.missing.push(line);
  }
  return result;
}

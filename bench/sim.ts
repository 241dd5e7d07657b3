// `npm run sim`: replays seeded rollouts through the real decision code (bench/sim/rollouts.ts)
// for every case the decisions need to get right, prints one row per case, and writes the
// results with the commit to bench/results/sim-<time>-<commit>.json.
//   SIM_RUNS (1000)  rollouts per case     SIM_FILTER   only cases whose name contains it
//   SIM_WORKERS (2)  worker processes        SIM_SEED (1) base seed
import { execSync, fork } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CaseSummary, runCase, standardCases } from './sim/rollouts.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(6);
const secs = (s: number | null) => (s === null ? '-' : s < 120 ? `${s}s` : `${(s / 60).toFixed(1)}m`);

export function formatRow(s: CaseSummary): string {
  const weights =
    Object.entries(s.rollbackWeights)
      .map(([w, n]) => `${w}%:${n}`)
      .join(' ') || '-';
  return `| ${s.name} | ${s.rps} | ${pct(s.rollback)} | ${pct(s.promote)} | ${pct(s.running)} | ${secs(s.medianDecisionS)} / ${secs(s.p90DecisionS)} | ${weights} | ${s.medianCanaryRequestsBeforeRollback ?? '-'} |`;
}
export const HEADER =
  '| case | rps | rollback | promote | running at 60 min | time to decision (median / p90) | weight at rollback (runs) | canary requests before rollback (median) |\n|---|---|---|---|---|---|---|---|';

async function main(): Promise<void> {
  const runs = Number(process.env.SIM_RUNS ?? 1000);
  const seed = Number(process.env.SIM_SEED ?? 1);
  const workers = Math.max(1, Number(process.env.SIM_WORKERS ?? Math.min(2, os.availableParallelism())));
  const filter = process.env.SIM_FILTER ?? '';
  const cases = standardCases()
    .map((c, index) => ({ c, index }))
    .filter(({ c }) => c.name.includes(filter));
  const started = Date.now();
  const summaries: CaseSummary[] = new Array(cases.length);
  process.stderr.write(`simulating ${cases.length} cases × ${runs} rollouts on ${workers} worker(s)\n${HEADER}\n`);
  let next = 0,
    done = 0;
  const work = async () => {
    while (next < cases.length) {
      const slot = next++;
      const { index } = cases[slot];
      const child = fork(fileURLToPath(import.meta.url), [JSON.stringify({ index, runs, seed })], {
        execArgv: ['--import', 'tsx'],
      });
      summaries[slot] = await new Promise<CaseSummary>((resolve, reject) => {
        child.once('message', (m) => resolve(m as CaseSummary));
        child.once('error', reject);
        child.once(
          'exit',
          (code) => code !== 0 && reject(new Error(`simulation worker for case ${index} exited with ${code}`)),
        );
      });
      done++;
      process.stderr.write(
        `${formatRow(summaries[slot])}   [${done}/${cases.length}, ${Math.round((Date.now() - started) / 1000)}s; sample ratio held ${pct(summaries[slot].srmHeld).trim()}; rolled back within 30 min ${pct(summaries[slot].rollbackWithin30m).trim()}]\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: workers }, work));
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: here }).toString().trim();
  } catch {
    /* not a git checkout */
  }
  const out = {
    kind: 'decision-simulation',
    commit,
    at: new Date().toISOString(),
    runsPerCase: runs,
    seed,
    machine: { cpus: os.cpus().length, node: process.version },
    elapsedS: Math.round((Date.now() - started) / 1000),
    cases: summaries,
  };
  await mkdir(path.join(here, 'results'), { recursive: true });
  const file = path.join(here, 'results', `sim-${out.at.replace(/[:.]/g, '-').slice(0, 19)}-${commit}.json`);
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(
    `${HEADER}\n${summaries.map(formatRow).join('\n')}\n\nwritten to ${path.relative(process.cwd(), file)}\n`,
  );
}

if (process.send && process.argv[2]) {
  // A worker process: one case, its summary sent back to the parent.
  const { index, runs, seed } = JSON.parse(process.argv[2]) as { index: number; runs: number; seed: number };
  process.send(runCase(standardCases()[index], runs, seed + index).summary, () => process.exit(0));
} else {
  await main();
}

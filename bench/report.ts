import { execSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const results = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

/** The checkout's short commit, so a result names the code it measured ("unknown" outside git). */
export function headCommit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

/** Writes one bench's result to bench/results/<kind>-<time>-<commit>.json; returns the path. */
export async function writeReport(kind: string, result: object): Promise<string> {
  const at = new Date().toISOString();
  const commit = headCommit();
  const report = { kind, at, commit, machine: { cpus: os.cpus().length, node: process.version }, ...result };
  await mkdir(results, { recursive: true });
  const file = path.join(results, `${kind}-${at.slice(0, 19).replace(/[:T]/g, '-')}-${commit}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return path.relative(process.cwd(), file);
}

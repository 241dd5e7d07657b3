import { setTimeout as sleep } from 'node:timers/promises';
import { color } from './format.js';

/** What the demo's acts share: how they print and how they wait. */

/** The demo shortens the analysis interval from 30 s to this, and says so. */
export const DEMO_INTERVAL = '2s';
export const out = (s = '') => process.stdout.write(`${s}\n`);
export const step = (n: number, s: string) => out(`\n${color.bold(`${n}.`)} ${color.bold(s)}`);

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | null>,
  timeoutMs: number,
  why?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== null) return v;
    if (Date.now() > deadline)
      throw new Error(`demo: timed out waiting for ${what}${why ? `; ${await why().catch(() => '')}` : ''}`);
    await sleep(100);
  }
}

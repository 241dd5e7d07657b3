/**
 * `npm run readme:walkthrough`: runs the README's walkthrough on this machine and writes what
 * each command printed back into its transcripts, and the demo's output into "What the demo
 * shows", so the README shows today's output. The test
 * (test/e2e/readme-walkthrough.test.ts) runs the same commands and checks the README still
 * matches them.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { CANARY_BIN } from '../common/processes.js';
import { runWalkthrough, walkthroughSteps } from '../test/helpers/walkthrough.js';

const file = new URL('../README.md', import.meta.url);
let readme = await readFile(file, 'utf8');

process.stderr.write('running the demo…\n');
const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
for (const k of ['DATABASE_URL', 'REDIS_URL', 'CANARY_DATA_DIR']) delete env[k];
const demo = (await promisify(execFile)(process.execPath, [CANARY_BIN, 'demo'], { env })).stdout;
const demoAt = readme.indexOf('```\n', readme.indexOf('## What the demo shows')) + 4;
readme = readme.slice(0, demoAt) + demo.trimEnd() + readme.slice(readme.indexOf('\n```', demoAt));

const steps = walkthroughSteps(readme);
process.stderr.write(`running ${steps.filter((s) => s.kind === 'command').length} commands of the walkthrough…\n`);
const run = await runWalkthrough(steps);
const outputs = [...run.outputs];

// Rewrite each transcript block of the walkthrough section: keep its `$ ` lines, replace the
// lines under each with what that command printed.
const start = readme.indexOf('\n## Walkthrough');
const end = readme.indexOf('\n## ', start + 1);
const section = readme.slice(start, end).replace(/^```(\w*)\n([\s\S]*?)^```$/gm, (block, lang, body: string) => {
  if (lang !== '') return block;
  const lines: string[] = [];
  for (const line of body.replace(/\n$/, '').split('\n')) {
    if (!line.startsWith('$ ')) continue;
    const out = outputs.shift();
    if (out?.command !== line.slice(2)) throw new Error(`out of step at "${line}"`);
    lines.push(line, ...trimEnd(out.lines).map((l) => run.asWritten(l)));
  }
  return `\`\`\`\n${lines.join('\n')}\n\`\`\``;
});
await writeFile(file, readme.slice(0, start) + section + readme.slice(end));
process.stderr.write('README.md: walkthrough transcripts rewritten from this run\n');

function trimEnd(lines: string[]): string[] {
  const out = lines.map((l) => l.trimEnd());
  while (out.length && out.at(-1) === '') out.pop();
  return out;
}

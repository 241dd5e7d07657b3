import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { compareOutput, runWalkthrough, walkthroughSteps } from '../helpers/walkthrough.js';

// The README's walkthrough, run from the README itself: its shell blocks verbatim, each `$`
// command of its transcripts with its output compared with the transcript's, so the two cannot
// drift. `npm run readme:walkthrough` rewrites the transcripts from a real run.
test('the README walkthrough runs as written on a fresh directory, and each command prints what the README shows', async (t) => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const steps = walkthroughSteps(readme);
  assert.ok(steps.filter((s) => s.kind === 'command').length >= 10, 'the walkthrough has its commands');
  const run = await runWalkthrough(steps);
  let exact = 0;
  let shown = 0;
  const problems: string[] = [];
  const commands = steps.flatMap((s) => (s.kind === 'command' ? [s] : []));
  commands.forEach((step, i) => {
    const out = run.outputs[i];
    const c = compareOutput(step.expected, out.lines.map(run.asWritten));
    exact += c.exact;
    shown += c.exact + c.loose.length + c.missing.length;
    for (const line of c.loose) t.diagnostic(`same kind of line, other values: ${line}`);
    if (c.missing.length)
      problems.push(
        `$ ${step.command}\n  not printed:\n    ${c.missing.join('\n    ')}\n  printed:\n    ${out.lines.join('\n    ')}`,
      );
  });
  assert.deepEqual(problems, [], `${problems.join('\n')}\nbackground output:\n${run.backgroundLog.slice(-4000)}`);
  // Which rules had their evidence when a canary was rolled back varies with the machine's
  // speed; everything else is the same from run to run.
  // (Up to about a fifth of the lines are of those kinds; format drift changes far more.)
  assert.ok(exact / shown >= 0.7, `only ${exact} of ${shown} lines have the README's shape`);
});

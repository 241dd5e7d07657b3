import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CANARY_BIN } from '../../common/processes.js';

const run = promisify(execFile);

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

test('the demo tells the whole story, exits 0 and leaves no server running', async (t) => {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  delete env.CANARY_DATA_DIR;
  const t0 = Date.now();
  const { stdout } = await run(process.execPath, [CANARY_BIN, 'demo'], { env, timeout: 300_000 });
  t.diagnostic(`the demo took ${(Date.now() - t0) / 1000} s`); // a benchmark figure, never asserted
  assert.match(stdout, /v1 {2}offline accuracy \d+\.\d% on \d+ held-out flowers/);
  assert.match(stdout, /The analysis found v2 critical and rolled it back on its own/);
  assert.match(stdout, /users saw 0 failed requests/);
  assert.match(stdout, /auto_rollback_triggered/);
  assert.match(stdout, /rolled back in shadow after \d+\.\ds: v4 agreed with v1 on \d+\.\d+% of \d+ real flowers/);
  assert.match(stdout, /users received 0 answers from v4 and saw 0 failed requests/);
  assert.match(stdout, /promoted: the baseline is now v3/);
  assert.match(
    stdout,
    /llm-2 rolled back after \d+\.\ds: latency_p95: share of canary streams whose first token came after/,
  );
  assert.match(stdout, /llm-3 promoted after \d+\.\ds/);
  assert.match(stdout, /canary +llm-3 .* tokens per answer, \$\d+\.\d+ per 1,000 answers/);
  assert.match(stdout, /users got \d+ streamed answers, 0 of them failed/);
  assert.match(stdout, /versions: .*v3 serving/);
  assert.match(stdout, /versions: .*v4 rolled_back/);
  assert.match(stdout, /versions: .*v2 rolled_back/);
  assert.match(stdout, /versions: .*v1 retired/);
  const ports = [...stdout.matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  assert.ok(ports.length >= 4);
  for (const p of new Set(ports)) assert.equal(await portOpen(p), false, `port ${p} still open after the demo`);
});

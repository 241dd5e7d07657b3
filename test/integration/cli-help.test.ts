import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CANARY_BIN } from '../../common/processes.js';

const run = promisify(execFile);
const COMMANDS = [
  'up',
  'control-plane',
  'proxy',
  'model-server',
  'demo',
  'deployments',
  'deploy',
  'register',
  'versions',
  'start',
  'status',
  'traffic',
  'promote',
  'rollback',
  'pause',
  'resume',
  'evaluate',
  'health',
  'metrics',
  'history',
  'wait',
  'load',
  'completion',
];

test('`canary <command> --help` prints usage and an example for every command, exits 0, and never starts a server', async () => {
  await Promise.all(
    COMMANDS.map(async (c) => {
      const { stdout } = await run(process.execPath, [CANARY_BIN, c, '--help'], { timeout: 120_000 });
      assert.match(stdout, new RegExp(`usage:\\n  canary ${c}`), c);
      assert.match(stdout, /example:\n {2}.*canary /, c);
    }),
  );
});

test('`canary --version` prints the version; an unknown command is a usage error (exit 2)', async () => {
  const { stdout } = await run(process.execPath, [CANARY_BIN, '--version']);
  assert.match(stdout, /^canary-mesh \d+\.\d+\.\d+ \(node v\d+/);
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'nonsense']),
    (e: { code: number; stderr: string }) => e.code === 2 && /unknown command "nonsense"/.test(e.stderr),
  );
});

test('with --json, errors are JSON on stdout with the same exit codes', async () => {
  const env = { ...process.env, CANARY_API_URL: 'http://127.0.0.1:1' };
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'status', 'iris', '--json'], { env }),
    (e: { code: number; stdout: string }) => e.code === 4 && JSON.parse(e.stdout).error.code === 'UNREACHABLE',
  );
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'start', '--json']),
    (e: { code: number; stdout: string }) => e.code === 2 && JSON.parse(e.stdout).error.code === 'USAGE',
  );
});

test('start refuses a weight of 0 or less as a usage error (exit 2), before calling the API', async () => {
  for (const w of ['0', '-1']) {
    await assert.rejects(
      run(process.execPath, [CANARY_BIN, 'start', 'iris', '--version', 'v2', `--weight=${w}`], {
        env: { ...process.env, CANARY_API_URL: 'http://127.0.0.1:1' },
      }),
      (e: { code: number; stderr: string }) => e.code === 2 && /--weight/.test(e.stderr),
    );
  }
});

test('`canary completion bash` is a valid bash script that completes commands and their flags; zsh too', async () => {
  const { stdout } = await run(process.execPath, [CANARY_BIN, 'completion', 'bash']);
  const check = (words: string[], cword: number) =>
    run('bash', [
      '-c',
      `${stdout}\nCOMP_WORDS=(${words.join(' ')}); COMP_CWORD=${cword}; _canary; echo "\${COMPREPLY[@]}"`,
    ]);
  assert.equal((await check(['canary', 'rol'], 1)).stdout.trim(), 'rollback');
  assert.match((await check(['canary', 'rollback', 'iris', '--'], 3)).stdout, /--baseline.*--to.*--force/);
  const zsh = await run(process.execPath, [CANARY_BIN, 'completion', 'zsh']);
  assert.match(zsh.stdout, /bashcompinit/);
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'completion', 'fish']),
    (e: { code: number }) => e.code === 2,
  );
});

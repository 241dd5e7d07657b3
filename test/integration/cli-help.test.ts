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

test('CLI mistakes get a clear word: did-you-mean for flags and commands with the usage, help per command with flags and defaults, a weight out of range before any call', async () => {
  const env = { ...process.env, CANARY_API_URL: 'http://127.0.0.1:1' };
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'start', 'iris', '--verison', 'v2'], { env }),
    (e: { code: number; stderr: string }) =>
      e.code === 2 &&
      /unknown option --verison; did you mean --version\?/.test(e.stderr) &&
      /usage:\n {2}canary start NAME/.test(e.stderr),
  );
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'deplyo', 'iris'], { env }),
    (e: { code: number; stderr: string }) => e.code === 2 && /did you mean deploy\?/.test(e.stderr),
  );
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'model-server', '--prot', '8000'], { env }),
    (e: { code: number; stderr: string }) => e.code === 2 && /did you mean --port\?/.test(e.stderr),
  );
  // Out of range is a usage error (2) from traffic as from start, and no request is sent.
  for (const args of [
    ['traffic', 'iris', '150'],
    ['start', 'iris', '--version', 'v2', '--weight', '150'],
  ])
    await assert.rejects(
      run(process.execPath, [CANARY_BIN, ...args], { env }),
      (e: { code: number; stderr: string }) => e.code === 2 && !/cannot reach/.test(e.stderr),
      args.join(' '),
    );
  for (const help of [
    ['help', 'start'],
    ['start', '--help'],
  ]) {
    const { stdout } = await run(process.execPath, [CANARY_BIN, ...help]);
    assert.match(stdout, /^usage:\n {2}canary start NAME/);
    assert.match(stdout, /flags:[\s\S]*--weight 20\s+default 20[\s\S]*--interval 30s\s+default 30s[\s\S]*--json/);
  }
});

test('a port in use is named by its setting', async () => {
  const net = await import('node:net');
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const os = await import('node:os');
  const routes = `${await mkdtemp(`${os.tmpdir()}/canary-port-`)}/routes.json`;
  await writeFile(routes, JSON.stringify({ version: 1, deployments: {} }));
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as { port: number }).port;
  try {
    await assert.rejects(
      run(process.execPath, [CANARY_BIN, 'proxy'], {
        env: {
          ...process.env,
          CANARY_PROXY_PORT: String(port),
          CANARY_PROXY_HOST: '127.0.0.1',
          CANARY_ADMIN_PORT: '0',
          CANARY_ROUTES_FILE: routes,
          REDIS_URL: '',
        },
        timeout: 30_000,
      }),
      (e: { code: number; stderr: string }) =>
        e.code !== 0 && new RegExp(`port ${port} is in use \\(CANARY_PROXY_PORT\\)`).test(e.stderr),
    );
  } finally {
    busy.close();
  }
});

test('on a terminal `canary up` logs only warnings (nothing lands on the prompt) and says how to see more', async () => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const dir = await mkdtemp(`${os.tmpdir()}/canary-tty-`);
  // util-linux `script` runs the command on a pseudo-terminal, as a person's shell would.
  const env: Record<string, string | undefined> = {
    ...process.env,
    CANARY_DATA_DIR: dir,
    CANARY_API_PORT: '0',
    CANARY_PROXY_PORT: '0',
    CANARY_ADMIN_PORT: '0',
    CANARY_XDS_PORT: 'off',
    DATABASE_URL: '',
    REDIS_URL: '',
  };
  delete env.LOG_LEVEL;
  const { spawn } = await import('node:child_process');
  const child = spawn('script', ['-qfc', `${process.execPath} ${CANARY_BIN} up`, '/dev/null'], { env });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  try {
    for (let i = 0; i < 600 && !out.includes('canary-mesh is up'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /canary-mesh is up[\s\S]*logging warnings only on this terminal: LOG_LEVEL=info for more/);
    await new Promise((r) => setTimeout(r, 1500)); // info lines (route table applied …) would come now
    assert.doesNotMatch(out, /"level":30/, 'no info lines on the terminal');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
});

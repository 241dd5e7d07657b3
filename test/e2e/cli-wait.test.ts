import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { CANARY_BIN, spawnCanary } from '../../common/processes.js';
import { startModelServer } from '../../model-servers/server.js';
import { freshSchema, REDIS_URL, testPrefix } from '../helpers/servers.js';

// `canary wait` as a CI pipeline runs it: a child process against a control plane in its own
// process, which is stopped and started again while the wait goes on.

const cleanups: (() => Promise<unknown> | undefined)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** Runs the CLI; resolves with its exit code and output (never rejects). */
function cli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [CANARY_BIN, ...args],
      { env: { ...process.env, ...env } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    cleanups.push(async () => void child.kill());
  });
}

test('canary wait follows a rollout through a restart of the control plane (exit 0 once promoted), and tells an outage from a rollback (exit 4)', async () => {
  const schema = await freshSchema();
  cleanups.push(() => schema.drop());
  const v1 = await startModelServer({ model: 'v1' });
  const v2 = await startModelServer({ model: 'v1', version: 'v2' });
  cleanups.push(
    () => v1.close(),
    () => v2.close(),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    DATABASE_URL: schema.url,
    REDIS_URL,
    CANARY_REDIS_PREFIX: testPrefix(),
    CANARY_API_PORT: String(port),
    CANARY_API_HOST: '127.0.0.1',
    CANARY_XDS_PORT: 'off',
    LOG_LEVEL: 'warn',
  };
  const controlPlane = () =>
    spawnCanary(['control-plane'], { env, isReady: (m) => m.ready === true, timeoutMs: 60_000, stderr: 'ignore' });
  let cp = await controlPlane();
  cleanups.push(() => cp.stop());
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then((r) => r.json());
  await api('POST', '/v1/deployments', { name: 'ci', baseline: { version: 'v1', url: v1.url } });
  await api('POST', '/v1/deployments/ci/canary', {
    version: 'v2',
    url: v2.url,
    weight: 10,
    policy: { interval: '1h' },
  });

  const waiting = cli(['wait', 'ci', '--every', '0.2', '--timeout', '2m'], { CANARY_API_URL: url });
  await new Promise((r) => setTimeout(r, 1000));
  await cp.stop(); // the control plane goes away mid-wait…
  await new Promise((r) => setTimeout(r, 1500));
  cp = await controlPlane(); // …and comes back on the same port
  await api('POST', '/v1/deployments/ci/promote', { reason: 'approved in CI' });
  const promoted = await waiting;
  assert.equal(promoted.code, 0, `${promoted.stdout}\n${promoted.stderr}`);
  assert.match(promoted.stdout, /promoted: v2 is the baseline/);
  // The first symptom is a refused connection, or a 503 from the control plane while it drains
  // (which of the two depends on when the poll lands); either way the wait says so and goes on.
  assert.match(
    promoted.stderr,
    /(cannot reach the control plane|HTTP 503)[^\n]*retrying until the timeout[\s\S]*answers again/,
  );

  // Nothing listening for the whole timeout: an outage, not a rollback.
  await cp.stop();
  const outage = await cli(['wait', 'ci', '--every', '0.2', '--timeout', '2s'], { CANARY_API_URL: url });
  assert.equal(outage.code, 4, `${outage.stdout}\n${outage.stderr}`);
  assert.match(outage.stderr, /did not answer/);
});

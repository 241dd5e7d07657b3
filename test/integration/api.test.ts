import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { CANARY_BIN } from '../../common/processes.js';
import { type RunningStack, startStack } from '../../control-plane/main.js';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { freshSchema, REDIS_URL, silent, testPrefix } from '../helpers/servers.js';

const run = promisify(execFile);
let stack: RunningStack, v1: RunningModelServer, v2: RunningModelServer, dropSchema: () => Promise<void>;
const TOKEN = 'test-token-123';

before(async () => {
  const schema = await freshSchema();
  dropSchema = schema.drop;
  [v1, v2] = await Promise.all([startModelServer({ model: 'v1' }), startModelServer({ model: 'v3', version: 'v2' })]);
  stack = await startStack(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
      CANARY_API_TOKEN: TOKEN,
    }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
});
after(async () => {
  await stack.close();
  await v1.close();
  await v2.close();
  await dropSchema();
});

const inject = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown, auth: string | null = TOKEN) =>
  stack.controlPlane.app.inject({
    method,
    url,
    payload: (payload ?? (method === 'GET' ? undefined : {})) as object,
    headers: auth ? { authorization: `Bearer ${auth}` } : {},
  });

test('every /v1 route needs the bearer token, reads included: 401 without, 403 when wrong', async () => {
  const body = { name: 'auth', baseline: { version: 'v1', url: v1.url } };
  const none = await inject('POST', '/v1/deployments', body, null);
  assert.equal(none.statusCode, 401);
  assert.equal(none.json().error.code, 'UNAUTHORIZED');
  const wrong = await inject('POST', '/v1/deployments', body, 'nope');
  assert.equal(wrong.statusCode, 403);
  assert.equal(wrong.json().error.code, 'FORBIDDEN');
  assert.equal((await inject('GET', '/v1/deployments', undefined, null)).statusCode, 401);
  assert.equal((await inject('GET', '/v1/deployments')).statusCode, 200);
});

test('bad input gets 400 with a stable code, unknown names 404, conflicts 409', async () => {
  const cases: [string, 'GET' | 'POST' | 'PUT', string, unknown, number, string][] = [
    ['missing baseline', 'POST', '/v1/deployments', { name: 'x' }, 400, 'BAD_REQUEST'],
    [
      'bad url',
      'POST',
      '/v1/deployments',
      { name: 'x', baseline: { version: 'v1', url: 'not a url' } },
      400,
      'BAD_REQUEST',
    ],
    [
      'extra field',
      'POST',
      '/v1/deployments',
      { name: 'x', baseline: { version: 'v1', url: v1.url }, colour: 'red' },
      400,
      'BAD_REQUEST',
    ],
    [
      'bad policy',
      'POST',
      '/v1/deployments',
      { name: 'x', baseline: { version: 'v1', url: v1.url }, policy: { steps: [50, 10] } },
      400,
      'BAD_REQUEST',
    ],
    ['unknown deployment', 'GET', '/v1/deployments/ghost', undefined, 404, 'DEPLOYMENT_NOT_FOUND'],
    ['unknown route', 'GET', '/v2/nothing', undefined, 404, 'NOT_FOUND'],
  ];
  for (const [what, method, url, body, status, code] of cases) {
    const r = await inject(method, url, body);
    assert.equal(r.statusCode, status, what);
    assert.equal(r.json().error.code, code, what);
    assert.ok(r.json().error.message.length > 0);
  }
  assert.equal(
    (await inject('POST', '/v1/deployments', { name: 'iris', baseline: { version: 'v1', url: v1.url } })).statusCode,
    201,
  );
  assert.equal(
    (await inject('POST', '/v1/deployments', { name: 'iris', baseline: { version: 'v1', url: v1.url } })).json().error
      .code,
    'DEPLOYMENT_EXISTS',
  );
  assert.equal((await inject('PUT', '/v1/deployments/iris/traffic', { weight: 10 })).json().error.code, 'NO_CANARY');
  assert.equal((await inject('PUT', '/v1/deployments/iris/traffic', { weight: 150 })).statusCode, 400);
  assert.equal(
    (await inject('POST', '/v1/deployments/iris/canary', { version: 'v9' })).json().error.code,
    'VERSION_NOT_FOUND',
  );
});

test('the API drives the real proxy: a canary at 20% gets traffic, traffic changes apply', async () => {
  const started = await inject('POST', '/v1/deployments/iris/canary', {
    version: 'v2',
    url: v2.url,
    weight: 20,
    policy: { interval: '1h' },
  });
  assert.equal(started.statusCode, 201);
  assert.equal(started.json().canary.weight, 20);
  assert.equal((await inject('POST', '/v1/deployments/iris/canary', { version: 'v2' })).statusCode, 409);
  const seen = async () => {
    const r = await fetch(`${stack.proxy.url}/iris/predict`, {
      method: 'POST',
      body: JSON.stringify({ features: { sepal_length: 5, sepal_width: 3, petal_length: 1.4, petal_width: 0.2 } }),
    });
    await r.arrayBuffer();
    return r.headers.get('x-canary-version');
  };
  await new Promise((r) => setTimeout(r, 100));
  const first = await Promise.all(Array.from({ length: 200 }, seen));
  const share = first.filter((v) => v === 'v2').length / 2;
  assert.ok(share > 10 && share < 30, `canary share ${share}%`);
  await inject('PUT', '/v1/deployments/iris/traffic', { weight: 100 });
  // Redis pub/sub carries the change to the proxy; on a loaded machine that can take a moment.
  let last: (string | null)[] = [];
  for (let i = 0; i < 50 && !(last.length && last.every((v) => v === 'v2')); i++) {
    await new Promise((r) => setTimeout(r, 100));
    last = await Promise.all(Array.from({ length: 20 }, seen));
  }
  const why = async () =>
    JSON.stringify(
      (await inject('GET', '/v1/deployments/iris/events?limit=10'))
        .json()
        .events.map((e: { type: string; reason: string | null }) => [e.type, e.reason]),
    );
  assert.ok(
    last.every((v) => v === 'v2'),
    `all traffic to v2 at 100%: saw ${last.join(',')}; events ${await why()}`,
  );
});

test('the CLI: human tables by default, --json for scripts, a clear message and non-zero exit on errors', async () => {
  const env = { ...process.env, CANARY_API_URL: stack.controlPlane.url, CANARY_API_TOKEN: TOKEN, NO_COLOR: '1' };
  const list = await run(process.execPath, [CANARY_BIN, 'deployments'], { env });
  assert.match(list.stdout, /^NAME\s+STATUS\s+BASELINE\s+CANARY\s+WEIGHT\s+VERDICT\s+LAST CANARY/);
  assert.match(list.stdout, /iris\s+progressing\s+v1\s+v2\s+100%/);
  const json = JSON.parse((await run(process.execPath, [CANARY_BIN, 'status', 'iris', '--json'], { env })).stdout);
  assert.equal(json.deployment.canary.version, 'v2');
  const pause = await run(process.execPath, [CANARY_BIN, 'pause', 'iris'], { env });
  assert.match(pause.stdout, /iris is paused/);
  await run(process.execPath, [CANARY_BIN, 'resume', 'iris'], { env });
  const evalOut = await run(process.execPath, [CANARY_BIN, 'evaluate', 'iris'], { env });
  assert.match(evalOut.stdout, /ROLE\s+VERSION\s+REQUESTS/);
  const rb = await run(process.execPath, [CANARY_BIN, 'rollback', 'iris', '--reason', 'cli test'], { env });
  assert.match(rb.stdout, /rolled back: baseline is v1/);
  const watch = await run(process.execPath, [CANARY_BIN, 'status', 'iris', '--watch'], { env, timeout: 10_000 });
  assert.match(watch.stdout, /no canary running: done watching/, 'status --watch ends with the canary');
  const hist = await run(process.execPath, [CANARY_BIN, 'history', 'iris'], { env });
  assert.match(hist.stdout, /^TIME\s+EVENT\s+VERSION\s+ACTOR\s+REASON/);
  assert.match(hist.stdout, /rolled_back\s+v2\s+cli\s+cli test/);
  assert.match(hist.stdout, /deployment_created\s+v1\s+/);
  // The CLI remembers what just happened: the last canary, how it ended and why.
  const after = await run(process.execPath, [CANARY_BIN, 'status', 'iris'], { env });
  assert.match(after.stdout, /canary\s+none\n\s+last\s+canary v2 rolled back \d+ s ago: cli test/);
  const listed = await run(process.execPath, [CANARY_BIN, 'deployments'], { env });
  assert.match(listed.stdout, /iris\s+stable\s+v1\s+.*v2 rolled back \d+ s ago/);
  // History by version: only v2's events, each naming it.
  const onlyV2 = JSON.parse(
    (await run(process.execPath, [CANARY_BIN, 'history', 'iris', '--version', 'v2', '--json'], { env })).stdout,
  );
  const types = onlyV2.events.map((e: { type: string; version: string }) => `${e.type}:${e.version}`);
  assert.ok(
    types.includes('canary_started:v2') && types.includes('rolled_back:v2') && types.includes('traffic_adjusted:v2'),
    types.join(' '),
  );
  assert.ok(
    types.includes('paused:v2'),
    `an event that does not name the version is the running canary's: ${types.join(' ')}`,
  );
  assert.ok(onlyV2.events.every((e: { version: string }) => e.version === 'v2'));
  const versions = await run(process.execPath, [CANARY_BIN, 'versions', 'iris', '--json'], { env });
  assert.deepEqual(
    JSON.parse(versions.stdout).versions.map((v: { version: string; state: string }) => [v.version, v.state]),
    [
      ['v2', 'rolled_back'],
      ['v1', 'serving'],
    ],
  );

  const failures: [string[], RegExp, number][] = [
    [['promote', 'iris'], /NO_CANARY/, 1],
    [['status', 'ghost'], /no deployment named "ghost".*DEPLOYMENT_NOT_FOUND/, 5],
    [['traffic', 'iris', 'lots'], /weight must be a number/, 2],
    [['frobnicate'], /unknown command/, 2],
    [['status'], /missing <name>/, 2],
    // A URL without its scheme: the message says what to write.
    [['deploy', 'hinted', '--version', 'v1', '--url', '127.0.0.1:8002'], /http:\/\/127\.0\.0\.1:8002/, 1],
  ];
  // A version registered at a URL where nothing answers: done, with a warning.
  const dead = await run(
    process.execPath,
    [CANARY_BIN, 'register', 'iris', '--version', 'v-dead', '--url', 'http://127.0.0.1:1'],
    { env },
  );
  assert.match(dead.stdout, /registered iris v-dead/);
  assert.match(dead.stderr, /warning: http:\/\/127\.0\.0\.1:1 does not answer from here \(ECONNREFUSED\)/);
  for (const [args, message, exitCode] of failures) {
    await assert.rejects(
      run(process.execPath, [CANARY_BIN, ...args], { env }),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, exitCode, args.join(' '));
        assert.match(e.stderr, message);
        return true;
      },
    );
  }
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'deployments'], { env: { ...env, CANARY_API_URL: 'http://127.0.0.1:1' } }),
    (e: { code: number; stderr: string }) => e.code === 4 && /cannot reach the control plane/.test(e.stderr),
  );
});

test('with no token the API refuses to listen beyond loopback', () => {
  assert.throws(
    () => loadControlPlaneConfig({ CANARY_API_HOST: '0.0.0.0' }),
    (e: Error) => e instanceof ConfigError && /CANARY_API_TOKEN/.test(e.message),
  );
  assert.equal(loadControlPlaneConfig({ CANARY_API_HOST: '0.0.0.0', CANARY_API_TOKEN: 'x' }).apiHost, '0.0.0.0');
});

test('`canary wait` follows a rollout for CI: exit 0 when promoted, 1 when rolled back, 2 on timeout', async () => {
  const env = { ...process.env, CANARY_API_URL: stack.controlPlane.url, CANARY_API_TOKEN: TOKEN, NO_COLOR: '1' };
  const start = async (version: string) => {
    const r = await inject('POST', '/v1/deployments/waiting/canary', {
      version,
      url: v2.url,
      weight: 10,
      policy: { interval: '1h' },
      force: true,
    });
    assert.equal(r.statusCode, 201, r.body);
  };
  assert.equal(
    (await inject('POST', '/v1/deployments', { name: 'waiting', baseline: { version: 'v1', url: v1.url } })).statusCode,
    201,
  );
  await start('v2');
  const timeout = run(process.execPath, [CANARY_BIN, 'wait', 'waiting', '--timeout', '1s', '--every', '0.2'], { env });
  await assert.rejects(
    timeout,
    (e: { code: number; stdout: string; stderr: string }) =>
      e.code === 3 && /v2 at 10%/.test(e.stdout) && /still rolling out/.test(e.stderr),
  );
  // A bare number is seconds; an unknown deployment has its own exit code.
  await assert.rejects(
    run(process.execPath, [CANARY_BIN, 'wait', 'no-such-deployment', '--timeout', '5'], { env }),
    (e: { code: number; stderr: string }) => e.code === 5 && /no-such-deployment/.test(e.stderr),
  );

  const promoted = run(process.execPath, [CANARY_BIN, 'wait', 'waiting', '--every', '0.2'], { env });
  await new Promise((r) => setTimeout(r, 800));
  await inject('POST', '/v1/deployments/waiting/promote', {});
  const ok = await promoted;
  assert.match(ok.stdout, /promoted: v2 is the baseline/);

  await start('v3');
  const rolledBack = run(process.execPath, [CANARY_BIN, 'wait', 'waiting', '--every', '0.2'], { env });
  await new Promise((r) => setTimeout(r, 800));
  await inject('POST', '/v1/deployments/waiting/rollback', { reason: 'not good enough' });
  await assert.rejects(
    rolledBack,
    (e: { code: number; stdout: string }) => e.code === 1 && /rolled back: v3/.test(e.stdout),
  );
});

test('the control plane serves its own /metrics for Prometheus: weights, verdicts, decisions, analysis time, leadership', async () => {
  assert.equal(
    (await inject('POST', '/v1/deployments', { name: 'observed', baseline: { version: 'v1', url: v1.url } }))
      .statusCode,
    201,
  );
  // Every series an alert reads is there at 0 from the deployment's creation, so the first
  // rollback, trip or failing analysis is an increase Prometheus sees.
  const fresh = (await inject('GET', '/metrics', undefined, null)).body;
  for (const action of ['advance', 'promote', 'rollback', 'record_failure', 'hold'])
    assert.match(fresh, new RegExp(`canary_cp_decisions_total\\{deployment="observed",action="${action}"\\} 0`));
  assert.match(fresh, /canary_cp_proxy_trips_total\{deployment="observed"\} 0/);
  assert.match(fresh, /canary_cp_analysis_failures_total\{deployment="observed"\} 0/);
  assert.equal(
    (
      await inject('POST', '/v1/deployments/observed/canary', {
        version: 'v2',
        url: v2.url,
        weight: 15,
        policy: { interval: '1h' },
        force: true,
      })
    ).statusCode,
    201,
  );
  assert.equal((await inject('POST', '/v1/deployments/observed/evaluate', {})).statusCode, 200);
  const text = (await inject('GET', '/metrics', undefined, null)).body; // no token: Prometheus scrapes it like the proxy's admin port
  assert.match(text, /canary_cp_canary_weight_percent\{deployment="observed"\} 15/);
  assert.match(
    text,
    /canary_cp_verdict\{deployment="observed",verdict="(inconclusive|healthy|degraded|critical|error)"\} 1/,
  );
  assert.match(text, /canary_cp_decisions_total\{deployment="observed",action="hold"\} 1/);
  assert.match(text, /canary_cp_analysis_duration_seconds_count [1-9]/);
  assert.match(text, /canary_cp_leader [01]/);
  assert.match(text, /# TYPE canary_cp_alert_deliveries_total counter/);
});

test('`canary load` sends real flowers at a set rate and reports both variants (live line, then a summary)', async () => {
  const env = { ...process.env, CANARY_API_URL: stack.controlPlane.url, CANARY_API_TOKEN: TOKEN, NO_COLOR: '1' };
  assert.equal(
    (await inject('POST', '/v1/deployments', { name: 'loaded', baseline: { version: 'v1', url: v1.url } })).statusCode,
    201,
  );
  assert.equal(
    (
      await inject('POST', '/v1/deployments/loaded/canary', {
        version: 'v2',
        url: v2.url,
        weight: 50,
        policy: { interval: '1h' },
        force: true,
      })
    ).statusCode,
    201,
  );
  await new Promise((r) => setTimeout(r, 300)); // the route table reaches the proxy
  const { stdout, stderr } = await run(
    process.execPath,
    [
      CANARY_BIN,
      'load',
      `${stack.proxy.url}/loaded/predict`,
      '--iris',
      '--rps',
      '40',
      '--duration',
      '2s',
      '--connections',
      '4',
    ],
    { env },
  );
  assert.match(stdout, /VARIANT\s+REQUESTS\s+4XX\s+5XX\s+P50\s+P99/);
  assert.match(stdout, /baseline\s+\d+\s+0\s+0/);
  assert.match(stdout, /canary\s+\d+\s+0\s+0/);
  assert.match(stderr, /rps\s+4xx 0\s+5xx 0/, 'a live progress line');
  const json = JSON.parse(
    (
      await run(
        process.execPath,
        [
          CANARY_BIN,
          'load',
          `${stack.proxy.url}/loaded/predict`,
          '--iris',
          '--rps',
          '40',
          '--duration',
          '1s',
          '--json',
        ],
        { env },
      )
    ).stdout,
  );
  assert.equal(json.errors, 0);
  // Rate-limited: unthrottled it would be thousands. Only the upper bound is asserted: a busy
  // machine sends fewer, never more (66 were seen once under CI load).
  assert.ok(json.requests >= 1 && json.requests <= 120, `${json.requests} requests at 40 rps for 1 s`);
  assert.ok(json.byVariant.baseline.requests > 0 && json.byVariant.canary.requests > 0);

  // As its usage says: 50 rps by default, POST with a JSON body; failures counted by class, exit 1.
  const plain = await run(
    process.execPath,
    [CANARY_BIN, 'load', `${stack.proxy.url}/loaded/predict`, '--duration', '1', '--json'],
    { env },
  );
  const byDefault = JSON.parse(plain.stdout);
  assert.equal(byDefault.errors, 0, 'the default request is a real prediction (POST, JSON)');
  assert.ok(
    byDefault.requests >= 1 && byDefault.requests <= 150,
    `${byDefault.requests} requests at the default 50 rps for 1 s`,
  );
  await assert.rejects(
    run(
      process.execPath,
      [CANARY_BIN, 'load', `${stack.proxy.url}/loaded/predict`, '--method', 'GET', '--duration', '1'],
      { env },
    ),
    (e: { code: number; stdout: string }) =>
      e.code === 1 &&
      /failed \(\d+ 4xx, 0 5xx, 0 socket errors\)/.test(e.stdout) &&
      /check the URL, --method/.test(e.stdout),
  );
});

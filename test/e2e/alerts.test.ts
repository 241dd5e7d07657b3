import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { signature } from '../../control-plane/alerts/alerts.js';
import { type RunningStack, startStack } from '../../control-plane/main.js';
import { eventually, freshSchema, startUpstream, statsCell, writeStatsNextSecond } from '../helpers/servers.js';

const SECRET = 'receiver-shared-secret';
let stack: RunningStack,
  drop: () => Promise<void>,
  logs = '';
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  const schema = await freshSchema();
  drop = schema.drop;
  // Capture every log line to prove secrets never appear in them.
  const sink = new Writable({
    write(chunk, _e, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  stack = await startStack(
    // The analysis loop is left idle (a tick of an hour): the tests call evaluate themselves.
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: 'off',
      CANARY_PUBLIC_URL: 'https://canary.example.test',
      CANARY_ANALYSIS_TICK: '1h',
      CANARY_LEADER_LEASE: '3h',
    }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: pino({ level: 'debug' }, sink) },
  );
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await stack.close();
  await drop();
});

const api = (method: string, url: string, payload?: unknown) =>
  stack.controlPlane.app
    .inject({ method: method as 'GET', url, payload: (payload ?? (method === 'GET' ? undefined : {})) as object })
    .then((r) => ({ status: r.statusCode, json: r.json() }));

/** A real HTTP receiver on port 0 that answers with `statuses` in turn (then 200), or hangs. */
async function receiver(statuses: number[] = [], hang = false) {
  const got: { body: string; headers: Record<string, unknown>; at: number }[] = [];
  let i = 0;
  const up = await startUpstream((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      got.push({ body, headers: req.headers, at: Date.now() });
      if (hang) return; // never answers
      res.writeHead(statuses[i++] ?? 200).end();
    });
  });
  cleanups.push(() => up.close());
  return { url: `${up.url}/hook`, got };
}

/** A deployment with a canary whose stats (as the proxies record them) are failing. */
async function failingCanary(name: string) {
  const v1 = await receiver(),
    v2 = await receiver(); // any reachable URL will do as upstreams
  await api('POST', '/v1/deployments', { name, baseline: { version: 'v1', url: v1.url } });
  await api('POST', `/v1/deployments/${name}/canary`, {
    version: 'v2',
    url: v2.url,
    weight: 20,
    policy: { interval: '1h', minRequests: 50 },
  });
  await writeStatsNextSecond(stack.statsStore!, [statsCell(name, 'v1', 800, 0), statsCell(name, 'v2', 200, 80)]);
}

test('an automatic rollback delivers one alert with the right body and a valid signature', async () => {
  const hook = await receiver();
  const sink = await api('POST', '/v1/alerts/sinks', { deployment: 'alpha', url: hook.url, secret: SECRET });
  assert.equal(sink.status, 404, 'the deployment must exist first');
  await failingCanary('alpha');
  const created = await api('POST', '/v1/alerts/sinks', { deployment: 'alpha', url: hook.url, secret: SECRET });
  assert.equal(created.status, 201);
  assert.equal(created.json.hasSecret, true);
  assert.equal(JSON.stringify(created.json).includes(SECRET), false, 'the secret is never returned');
  assert.equal(JSON.stringify((await api('GET', '/v1/alerts/sinks')).json).includes(SECRET), false);

  const verdict = (await api('POST', '/v1/deployments/alpha/evaluate')).json;
  assert.deepEqual(verdict.actions, [{ type: 'rollback' }]);
  await stack.controlPlane.alerts.idle();
  assert.equal(hook.got.length, 1, 'one alert: the rollback (analysis_failed alerts only when nothing acted)');
  const [{ body, headers }] = hook.got;
  assert.equal(headers['x-canary-signature'], signature(SECRET, body));
  const alert = JSON.parse(body);
  assert.equal(alert.deployment, 'alpha');
  assert.equal(alert.event, 'auto_rollback_triggered');
  assert.deepEqual(alert.versions, { baseline: 'v1', canary: 'v2' });
  assert.equal(alert.verdict, 'critical');
  assert.equal(alert.stats.canary.modelErrors, 80);
  assert.equal(alert.dashboard, 'https://canary.example.test/#/d/alpha');
  const events = (await api('GET', '/v1/deployments/alpha/events')).json.events;
  const rollback = events.find((e: { type: string }) => e.type === 'auto_rollback_triggered');
  assert.equal(rollback.deliveries.length, 1);
  assert.equal(rollback.deliveries[0].status, 'delivered');
  assert.equal(rollback.deliveries[0].httpStatus, 200);
});

test('a receiver that fails twice and then succeeds gets three attempts, each recorded', async () => {
  await failingCanary('beta');
  const hook = await receiver([503, 502]);
  await api('POST', '/v1/alerts/sinks', { deployment: 'beta', url: hook.url, kind: 'slack' });
  await api('POST', '/v1/deployments/beta/evaluate');
  await stack.controlPlane.alerts.idle();
  assert.equal(hook.got.length, 3);
  assert.match(JSON.parse(hook.got[0].body).text, /auto rollback triggered for \*beta\*/);
  assert.ok(hook.got[2].at - hook.got[1].at >= hook.got[1].at - hook.got[0].at, 'backoff grows');
  const events = (await api('GET', '/v1/deployments/beta/events')).json.events;
  const d = events.find((e: { type: string }) => e.type === 'auto_rollback_triggered').deliveries;
  assert.deepEqual(
    d.map((x: { attempt: number; status: string; httpStatus: number }) => [x.attempt, x.status, x.httpStatus]),
    [
      [1, 'retrying', 503],
      [2, 'retrying', 502],
      [3, 'delivered', 200],
    ],
  );
});

test('a receiver that hangs delays neither the rollback nor another sink', async () => {
  await failingCanary('gamma');
  const hanging = await receiver([], true);
  const healthy = await receiver();
  const hangingSink = (await api('POST', '/v1/alerts/sinks', { deployment: 'gamma', url: hanging.url })).json;
  await api('POST', '/v1/alerts/sinks', { deployment: 'gamma', url: healthy.url });
  // Attempts to deliver gamma's alerts to the hanging sink that have finished (a timeout included).
  const hangingAttempts = async () =>
    (await api('GET', '/v1/deployments/gamma/events')).json.events.flatMap(
      (e: { deliveries: { sinkId: number; at: string }[] }) => e.deliveries.filter((d) => d.sinkId === hangingSink.id),
    );
  const r = await api('POST', '/v1/deployments/gamma/evaluate');
  assert.deepEqual(r.json.actions, [{ type: 'rollback' }]);
  // Causal, not timed: the rollback answered while the hanging sink's first attempt was still open
  // (it never answers; waiting on it would have meant returning only after its timeout).
  assert.deepEqual(await hangingAttempts(), [], 'the rollback did not wait for the hanging sink');
  assert.equal((await api('GET', '/v1/deployments/gamma')).json.canary, null, 'rolled back at once');
  await eventually(() => assert.equal(healthy.got.length, 1, 'the healthy sink got its alert'), 20_000);
  // ... while the other still hung: any attempt of the hanging sink finished after it (its timeout).
  for (const d of await hangingAttempts())
    assert.ok(
      Date.parse(d.at) >= healthy.got[0].at,
      `the hanging sink's attempt ended at ${d.at}, before the other's alert`,
    );
});

test('analysis_failed alerts when autoRollback is off; secrets never reach the logs', async () => {
  const hook = await receiver();
  const v = await receiver();
  await api('POST', '/v1/deployments', { name: 'delta', baseline: { version: 'v1', url: v.url } });
  await api('POST', '/v1/alerts/sinks', { url: hook.url, secret: SECRET }); // a global sink
  await api('POST', '/v1/deployments/delta/canary', {
    version: 'v2',
    url: v.url.replace('/hook', '/x'),
    weight: 20,
    policy: { interval: '1h', minRequests: 50, autoRollback: false },
  });
  await writeStatsNextSecond(stack.statsStore!, [statsCell('delta', 'v1', 800, 0), statsCell('delta', 'v2', 200, 80)]);
  const r = await api('POST', '/v1/deployments/delta/evaluate');
  assert.deepEqual(r.json.actions, [{ type: 'record_failure' }]);
  await stack.controlPlane.alerts.idle();
  const types = hook.got.map((g) => JSON.parse(g.body).event);
  assert.ok(types.includes('analysis_failed'), `got ${types.join(', ')}`);
  assert.equal(logs.includes(SECRET), false, 'no secret in the logs');
  assert.ok(logs.length > 0);
});

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as xdsClient from '@grpc/grpc-js-xds';
import * as protoLoader from '@grpc/proto-loader';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { type RunningStack, startStack } from '../../control-plane/main.js';
import { ALL_NODES } from '../../control-plane/xds/cache.js';
import { TYPE } from '../../control-plane/xds/protos.js';
import { freshSchema, silent, statsCell, writeStatsNextSecond } from '../helpers/servers.js';

// The client under test is @grpc/grpc-js-xds: a real xDS client no one here wrote. Its
// process-wide XdsClient keeps retrying the ADS server after the test closes it, which is
// why `npm test` runs node's test runner with --test-force-exit.
xdsClient.register();

const here = path.dirname(fileURLToPath(import.meta.url));
const def = protoLoader.loadSync(path.join(here, '../helpers/who.proto'));
const Who = (grpc.loadPackageDefinition(def).canarytest as grpc.GrpcObject).Who as grpc.ServiceClientConstructor;

let stack: RunningStack, drop: () => Promise<void>, client: grpc.Client;
const servers: grpc.Server[] = [];

async function whoServer(name: string): Promise<number> {
  const s = new grpc.Server();
  s.addService(Who.service, {
    Ask: (_call: unknown, cb: grpc.sendUnaryData<{ server: string }>) => cb(null, { server: name }),
  });
  servers.push(s);
  return new Promise((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}

const api = (method: string, url: string, payload?: unknown) =>
  stack.controlPlane.app
    .inject({ method: method as 'GET', url, payload: (payload ?? (method === 'GET' ? undefined : {})) as object })
    .then((r) => r.json());

function ask(): Promise<string> {
  return new Promise((resolve, reject) => {
    (
      client as unknown as {
        Ask: (req: object, opts: object, cb: (err: Error | null, res: { server: string }) => void) => void;
      }
    ).Ask({}, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res.server)));
  });
}

async function share(n: number): Promise<number> {
  let canary = 0;
  for (let i = 0; i < n; i++) if ((await ask()) === 'v2') canary++;
  return (canary / n) * 100;
}

before(async () => {
  const schema = await freshSchema();
  drop = schema.drop;
  const [p1, p2] = await Promise.all([whoServer('v1'), whoServer('v2')]);
  stack = await startStack(
    // The analysis loop is left idle (a tick of an hour): the tests call evaluate themselves.
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
      CANARY_XDS_HOST: '127.0.0.1',
      CANARY_ANALYSIS_TICK: '1h',
      CANARY_LEADER_LEASE: '3h',
    }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
  await api('POST', '/v1/deployments', { name: 'who', baseline: { version: 'v1', url: `h2c://127.0.0.1:${p1}` } });
  await api('POST', '/v1/deployments/who/canary', {
    version: 'v2',
    url: `h2c://127.0.0.1:${p2}`,
    weight: 20,
    policy: { interval: '1h', minRequests: 50 },
  });
  const bootstrap = {
    xds_servers: [
      {
        server_uri: `127.0.0.1:${stack.controlPlane.xds!.port}`,
        channel_creds: [{ type: 'insecure' }],
        server_features: ['xds_v3'],
      },
    ],
    node: { id: 'xds-test-client', locality: {} },
  };
  client = new Who('xds:///who', grpc.credentials.createInsecure(), {
    'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap),
  });
});

after(async () => {
  client?.close();
  await stack?.close();
  for (const s of servers) s.forceShutdown();
  await drop();
});

test('a gRPC client dialing xds:///{deployment} splits 20% to the canary', async () => {
  const s = await share(2000);
  assert.ok(Math.abs(s - 20) <= 3, `canary share ${s.toFixed(1)}% (binomial sd ≈ 0.9 points)`);
  const status = await api('GET', '/v1/xds');
  assert.ok(status.counters.acks >= 4, 'listener, route, cluster and endpoint updates were ACKed');
  assert.equal(status.counters.nacks, 0);
});

test('the same h2c:// versions through canary-mesh’s own proxy (x-canary-deployment metadata) see the same 20% split', async () => {
  const viaProxy = new Who(stack.proxy.url.replace('http://', ''), grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('x-canary-deployment', 'who');
  let canary = 0;
  const n = 2000;
  for (let i = 0; i < n; i++) {
    const server = await new Promise<string>((resolve, reject) =>
      (
        viaProxy as unknown as {
          Ask: (r: object, m: grpc.Metadata, o: object, cb: (e: Error | null, r: { server: string }) => void) => void;
        }
      ).Ask({}, md, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res.server))),
    );
    if (server === 'v2') canary++;
  }
  viaProxy.close();
  const s = (canary / n) * 100;
  assert.ok(Math.abs(s - 20) <= 3, `canary share through the proxy ${s.toFixed(1)}% (binomial sd ≈ 0.9 points)`);
});

test('a weight change through the REST API shifts traffic within a second, on the same ADS stream, with no failed call', async () => {
  const streams = (await api('GET', '/v1/xds')).counters.streams;
  let failures = 0,
    running = true;
  const seen: { at: number; server: string }[] = [];
  const loop = (async () => {
    while (running) {
      try {
        seen.push({ at: Date.now(), server: await ask() });
      } catch {
        failures++;
      }
    }
  })();
  await sleep(200);
  const changedAt = Date.now();
  await api('PUT', '/v1/deployments/who/traffic', { weight: 100 });
  await sleep(1500);
  running = false;
  await loop;
  assert.equal(failures, 0);
  const after1s = seen.filter((s) => s.at > changedAt + 1000);
  assert.ok(after1s.length > 50);
  assert.ok(
    after1s.every((s) => s.server === 'v2'),
    'all traffic on the canary one second after the change',
  );
  assert.equal((await api('GET', '/v1/xds')).counters.streams, streams, 'no new ADS stream');
});

test('a NACKed update is counted and the client keeps its last good config', async () => {
  const xds = stack.controlPlane.xds!.server;
  const good = xds.cache.get(ALL_NODES)!;
  const badRoutes = new Map(good.resources[TYPE.route]);
  const route = structuredClone(badRoutes.get('grpc_who')!) as {
    virtual_hosts: { routes: { route: { weighted_clusters: { clusters: { weight: { value: number } }[] } } }[] }[];
  };
  for (const c of route.virtual_hosts[0].routes[0].route.weighted_clusters.clusters) c.weight.value = 0; // invalid: weights add up to 0
  badRoutes.set('grpc_who', route as never);
  const nacks = xds.counters.nacks;
  xds.cache.set(ALL_NODES, {
    versions: { ...good.versions, [TYPE.route]: 'bad-1' },
    resources: { ...good.resources, [TYPE.route]: badRoutes },
  });
  await sleep(500);
  assert.ok(xds.counters.nacks > nacks, 'the client NACKed the bad route configuration');
  assert.equal(xds.lastNack[0].typeUrl, TYPE.route);
  for (let i = 0; i < 20; i++) assert.equal(await ask(), 'v2', 'still served by the last good config (100% canary)');
  xds.cache.set(ALL_NODES, good); // the next good snapshot goes out again
});

test('an automatic rollback sends all gRPC traffic to the baseline', async () => {
  // The proxies' windowed stats say the canary fails 40% of requests (as a proxy would record them).
  await api('PUT', '/v1/deployments/who/traffic', { weight: 20 });
  await writeStatsNextSecond(stack.statsStore!, [statsCell('who', 'v1', 800, 0), statsCell('who', 'v2', 200, 80)]);
  const verdict = await api('POST', '/v1/deployments/who/evaluate');
  assert.equal(verdict.verdict, 'critical');
  assert.deepEqual(verdict.actions, [{ type: 'rollback' }]);
  await sleep(300);
  for (let i = 0; i < 200; i++) assert.equal(await ask(), 'v1');
  const types = (await api('GET', '/v1/deployments/who/events')).events.map((e: { type: string }) => e.type);
  assert.deepEqual(types.slice(0, 2), ['rolled_back', 'auto_rollback_triggered']);
});

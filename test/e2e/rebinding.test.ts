import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { loadControlPlaneConfig } from '../../common/config.js';
import { type RunningControlPlane, startControlPlane } from '../../control-plane/main.js';
import { echoUpstream, freshSchema, REDIS_URL, route, silent, startTestProxy, testPrefix } from '../helpers/servers.js';

// DNS rebinding, tried the way an attacker's page would reach a loopback server: with a raw
// socket, since fetch cannot set Host. A page on a name rebound to 127.0.0.1 sends that name
// as Host; only what names loopback itself (in any spelling) may be answered by the token-less
// API, and the proxy's admin port also answers IP literals (Prometheus scrapes by address).

const cleanups: (() => Promise<unknown>)[] = [];
let cp: RunningControlPlane;
let adminPort: number;
before(async () => {
  const schema = await freshSchema();
  cleanups.push(() => schema.drop());
  cp = await startControlPlane(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: 'off',
    }),
    { logger: silent },
  );
  cleanups.push(() => cp.close());
  const base = await echoUpstream('baseline');
  const proxy = await startTestProxy({ deployments: { m: route('m', base.url, null) } });
  adminPort = proxy.adminPort;
  cleanups.push(
    () => proxy.close(),
    () => base.close(),
  );
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** One request with exactly these header lines; the status code of the answer. */
function rawStatus(port: number, path: string, headerLines: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => {
      text += d;
    });
    s.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
    s.on('error', reject);
    s.write(`GET ${path} HTTP/1.1\r\n${headerLines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`);
  });
}

type Expect = 'both' | 'neither' | 'admin';
/** Host forms, with `:P` standing for the server's own port. */
const HOSTS: [string | null, Expect][] = [
  ['127.0.0.1', 'both'],
  ['127.0.0.1:P', 'both'],
  ['127.0.0.1.', 'both'],
  ['127.0.0.1.:P', 'both'],
  ['127.9.8.7:P', 'both'],
  ['localhost', 'both'],
  ['localhost:P', 'both'],
  ['LOCALHOST:P', 'both'],
  ['LocalHost.', 'both'],
  ['[::1]', 'both'],
  ['[::1]:P', 'both'],
  ['[0:0:0:0:0:0:0:1]:P', 'both'],
  ['[::ffff:127.0.0.1]:P', 'both'],
  ['2130706433:P', 'both'],
  ['0x7f.0.0.1', 'both'],
  ['127.1', 'both'],
  ['127.0.0.1.evil.example', 'neither'],
  ['127.0.0.1.evil.example:P', 'neither'],
  ['localhost.evil.example', 'neither'],
  ['127.evil.example', 'neither'],
  ['127.0.0.1.nip.io', 'neither'],
  ['evil.example', 'neither'],
  ['evil.example:P', 'neither'],
  ['localhost..', 'neither'],
  ['localhost.localdomain.evil', 'neither'],
  ['a@127.0.0.1', 'neither'],
  ['127.0.0.1:P@evil.example', 'neither'],
  ['127.0.0.1/evil', 'neither'],
  ['127.0.0.1 evil.example', 'neither'],
  ['[::1].evil.example', 'neither'],
  ['', 'neither'],
  [null, 'neither'],
  ['10.0.0.5', 'admin'],
  ['10.0.0.5:9901', 'admin'],
  ['192.168.1.10:P', 'admin'],
  ['[fd00::1]:P', 'admin'],
  ['[::ffff:10.0.0.1]', 'admin'],
];

for (const [host, expect] of HOSTS) {
  test(`Host ${host === null ? '(none)' : JSON.stringify(host)}: ${expect === 'both' ? 'answered' : expect === 'admin' ? 'admin port only (an IP literal)' : 'refused'} by the API and the admin port`, async () => {
    const lines = (port: number) => (host === null ? [] : [`Host: ${host.replace(':P', `:${port}`)}`]);
    const api = await rawStatus(cp.port, '/v1/deployments', lines(cp.port));
    const admin = await rawStatus(adminPort, '/routes', lines(adminPort));
    assert.equal(api === 200, expect === 'both', `API answered ${api}`);
    assert.equal(admin === 200, expect !== 'neither', `admin port answered ${admin}`);
    if (expect !== 'both') assert.ok(api === 403 || api === 400, `API refused with ${api}`);
  });
}

/** Origin forms for a request whose Host is 127.0.0.1:P. */
const ORIGINS: [string, boolean][] = [
  ['http://127.0.0.1:P', true],
  ['http://127.0.0.1:P/', true],
  ['http://127.0.0.1.evil.example:P', false],
  ['http://evil.example', false],
  ['https://127.0.0.1:P', false],
  ['http://127.0.0.1', false],
  ['null', false],
  ['http://user@127.0.0.1:P', false],
  ['file://', false],
];

for (const [origin, ok] of ORIGINS) {
  test(`Origin ${JSON.stringify(origin)} with Host 127.0.0.1: ${ok ? 'answered' : 'refused'} by the API and the admin port`, async () => {
    for (const port of [cp.port, adminPort]) {
      const path = port === cp.port ? '/v1/deployments' : '/routes';
      const status = await rawStatus(port, path, [
        `Host: 127.0.0.1:${port}`,
        `Origin: ${origin.replace(':P', `:${port}`)}`,
      ]);
      assert.equal(status === 200, ok, `${port === cp.port ? 'API' : 'admin port'} answered ${status}`);
    }
  });
}

test('an Origin is compared as parsed: http://LOCALHOST:P is the origin of Host localhost:P', async () => {
  for (const port of [cp.port, adminPort]) {
    const path = port === cp.port ? '/v1/deployments' : '/routes';
    assert.equal(await rawStatus(port, path, [`Host: localhost:${port}`, `Origin: http://LOCALHOST:${port}`]), 200);
  }
});

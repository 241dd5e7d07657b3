import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRouteTable, RouteTableError } from '../../proxy/contract/route-table.js';
import { resolveTarget } from '../../proxy/request/target.js';
import { rawResponseHeadersForClient, requestHeadersForUpstream } from '../../proxy/upstream/headers.js';

test('a valid table is normalised: origins only, retry on by default', () => {
  const t = parseRouteTable({
    version: 3,
    deployments: {
      iris: {
        baseline: { version: 'v1', url: 'http://a:1/x' },
        canary: { version: 'v2', url: 'http://b:2', weight: 20 },
      },
    },
  });
  assert.equal(t.deployments.iris.baseline.url, 'http://a:1');
  assert.equal(t.deployments.iris.retryCanaryOnBaseline, true);
  assert.equal(t.deployments.iris.canary?.weight, 20);
});

test('bad tables are refused with a message naming the field', () => {
  const bad: [unknown, RegExp][] = [
    [null, /expected an object/],
    [{ version: -1 }, /version/],
    [{ deployments: { 'bad name!': { baseline: { version: 'v1', url: 'http://a' } } } }, /invalid deployment name/],
    [{ deployments: { m: { baseline: { version: 'v1', url: 'nope' } } } }, /baseline\.url/],
    [{ deployments: { m: { baseline: { version: 'v1', url: 'ftp://a' } } } }, /only http/],
    [
      {
        deployments: {
          m: { baseline: { version: 'v1', url: 'http://a' }, canary: { version: 'v2', url: 'http://b', weight: 101 } },
        },
      },
      /weight/,
    ],
    [{ deployments: { m: { baseline: { version: '', url: 'http://a' } } } }, /version/],
  ];
  for (const [input, msg] of bad)
    assert.throws(
      () => parseRouteTable(input),
      (e: Error) => e instanceof RouteTableError && msg.test(e.message),
    );
});

test('gateway mode maps /{deployment}/{rest} to /{rest}; sidecar keeps the path', () => {
  assert.deepEqual(resolveTarget('/iris/predict?x=1', null), { deployment: 'iris', path: '/predict?x=1' });
  assert.deepEqual(resolveTarget('/iris', null), { deployment: 'iris', path: '/' });
  assert.deepEqual(resolveTarget('/iris?x=1', null), { deployment: 'iris', path: '/?x=1' });
  assert.deepEqual(resolveTarget('/a/b/c', 'iris'), { deployment: 'iris', path: '/a/b/c' });
  assert.equal(resolveTarget('/%E0%A4%A/x', null), null);
  assert.equal(resolveTarget('http://evil/x', null), null);
});

test('hop-by-hop headers and those named in Connection are not forwarded', () => {
  const out = requestHeadersForUpstream(
    {
      connection: 'keep-alive, x-secret-hop',
      'keep-alive': 'timeout=5',
      'x-secret-hop': '1',
      te: 'trailers',
      host: 'proxy',
      'x-keep': 'yes',
      'transfer-encoding': 'chunked',
    },
    'rid',
    '127.0.0.1',
  );
  assert.deepEqual(Object.keys(out).sort(), ['x-forwarded-for', 'x-forwarded-host', 'x-keep', 'x-request-id']);
  const raw = [
    'Connection',
    'close, X-Hop',
    'Content-Type',
    'a/b',
    'Transfer-Encoding',
    'chunked',
    'X-Hop',
    '1',
    'Set-Cookie',
    'a',
    'Set-Cookie',
    'b',
  ].map((v) => Buffer.from(v));
  const back = rawResponseHeadersForClient(raw, { 'x-canary-variant': 'canary' });
  assert.deepEqual(back, ['Content-Type', 'a/b', 'Set-Cookie', 'a', 'Set-Cookie', 'b', 'x-canary-variant', 'canary']);
});

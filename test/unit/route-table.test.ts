import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRouteTable, RouteTableError, upstreamParts } from '../../proxy/contract/route-table.js';
import { resolveTarget } from '../../proxy/request/target.js';
import { rawResponseHeadersForClient, requestHeadersForUpstream } from '../../proxy/upstream/headers.js';

test('a valid table is normalised: a path prefix kept, retry on by default', () => {
  const t = parseRouteTable({
    version: 3,
    deployments: {
      iris: {
        baseline: { version: 'v1', url: 'http://a:1/x' },
        canary: { version: 'v2', url: 'http://b:2', weight: 20 },
      },
    },
  });
  assert.equal(t.deployments.iris.baseline.url, 'http://a:1/x');
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

test("xDS: a version URL's path prefix becomes Envoy's prefix_rewrite; versions with different prefixes get a route each, the canary's by runtime_fraction; both encode as Envoy's RouteConfiguration", async () => {
  const { buildSnapshot, ENVOY_LISTENER, checkConsistency } = await import('../../control-plane/xds/snapshot.js');
  const { TYPE } = await import('../../control-plane/xds/protos.js');
  const { encode, decode } = await import('../../control-plane/xds/codec.js');
  const routesOf = (baseline: string, canary: string) => {
    const snapshot = buildSnapshot(
      parseRouteTable({
        version: 1,
        deployments: {
          iris: {
            baseline: { version: 'v1', url: baseline },
            canary: { version: 'v2', url: canary, weight: 12.5 },
          },
        },
      }),
    );
    assert.deepEqual(checkConsistency(snapshot), []);
    const route = snapshot.resources[TYPE.route].get(ENVOY_LISTENER)!;
    return (decode(TYPE.route, encode(TYPE.route, route)) as any).virtual_hosts[0].routes;
  };
  const same = routesOf('http://127.0.0.1:8001/models/iris', 'http://127.0.0.1:8002/models/iris');
  assert.equal(same.length, 1);
  assert.equal(same[0].route.prefix_rewrite, '/models/iris/');
  assert.deepEqual(
    same[0].route.weighted_clusters.clusters.map((c: any) => [c.name, c.weight.value]),
    [
      ['iris__v1', 8750],
      ['iris__v2', 1250],
    ],
  );
  const different = routesOf('http://127.0.0.1:8001/v1/models/iris', 'http://127.0.0.1:8002/v2/models/iris');
  assert.deepEqual(
    different.map((r: any) => [
      r.match.prefix,
      r.match.runtime_fraction?.default_value.numerator ?? null,
      r.route.prefix_rewrite,
      r.route.weighted_clusters.clusters.map((c: any) => c.name),
    ]),
    [
      ['/iris/', 1250, '/v2/models/iris/', ['iris__v2']],
      ['/iris/', null, '/v1/models/iris/', ['iris__v1']],
    ],
  );
  assert.equal(different[0].match.runtime_fraction.default_value.denominator, 'TEN_THOUSAND');
});

test('xDS: an h2c:// version is a cluster Envoy speaks HTTP/2 to (HttpProtocolOptions), an http:// one is not; both encode as Envoy’s Cluster', async () => {
  const { buildSnapshot, checkConsistency } = await import('../../control-plane/xds/snapshot.js');
  const { TYPE } = await import('../../control-plane/xds/protos.js');
  const { encode, decode } = await import('../../control-plane/xds/codec.js');
  const snapshot = buildSnapshot(
    parseRouteTable({
      version: 1,
      deployments: {
        infer: {
          baseline: { version: 'v1', url: 'h2c://127.0.0.1:8001' },
          canary: { version: 'v2', url: 'http://127.0.0.1:8002', weight: 10 },
        },
      },
    }),
  );
  assert.deepEqual(checkConsistency(snapshot), []);
  const cluster = (name: string) =>
    decode(TYPE.cluster, encode(TYPE.cluster, snapshot.resources[TYPE.cluster].get(name)!)) as any;
  const options =
    cluster('infer__v1').typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
  const url = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
  assert.equal(options.type_url, url);
  assert.deepEqual(decode(url, options.value), { explicit_http_config: { http2_protocol_options: {} } });
  assert.equal(cluster('infer__v2').typed_extension_protocol_options, undefined);
});

test('h2c:// model server URLs are accepted (origin kept, as WHATWG URL gives "null" for it); other schemes are refused', () => {
  const t = parseRouteTable({
    version: 1,
    deployments: { g: { baseline: { version: 'v1', url: 'h2c://models.internal:8001/' } } },
  });
  assert.equal(t.deployments.g.baseline.url, 'h2c://models.internal:8001');
  assert.deepEqual(upstreamParts('h2c://models.internal:8001'), { origin: 'h2c://models.internal:8001', prefix: '' });
  assert.throws(
    () => parseRouteTable({ version: 1, deployments: { g: { baseline: { version: 'v1', url: 'grpc://h:1' } } } }),
    /only http, https and h2c upstreams/,
  );
});

test('a route table refuses an upstream URL with a query or fragment, and keeps a path prefix without its trailing slash', () => {
  for (const url of ['http://h:1/a?b=1', 'http://h:1/a#b'])
    assert.throws(
      () => parseRouteTable({ deployments: { d: { baseline: { version: 'v1', url } } } }),
      /query string or fragment/,
    );
  const t = parseRouteTable({ deployments: { d: { baseline: { version: 'v1', url: 'http://h:1/models/x/' } } } });
  assert.equal(t.deployments.d.baseline.url, 'http://h:1/models/x');
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import protobuf from 'protobufjs';
import { spawnModelServer } from '../../common/processes.js';
import { loadInferenceProtos, startGrpcInferServer } from '../../model-servers/grpc-infer.js';
import { RedisStatsStore } from '../../proxy/contract/redis-stats-store.js';
import {
  echoUpstream,
  eventually,
  REDIS_URL,
  route,
  startTestProxy,
  startUpstream,
  testPrefix,
} from '../helpers/servers.js';

// gRPC through the proxy as gRPC clients see it: @grpc/grpc-js clients against the project's
// open-inference-protocol server, through the proxy and directly, compared call by call.

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const { Inference, Health } = loadInferenceProtos();
type Client = grpc.Client & Record<string, (...a: unknown[]) => grpc.ClientUnaryCall>;

function client(target: string, Ctor = Inference): Client {
  const c = new Ctor(target.replace(/^\w+:\/\//, ''), grpc.credentials.createInsecure()) as unknown as Client;
  cleanups.push(() => c.close());
  return c;
}

interface CallResult {
  error: grpc.ServiceError | null;
  value: unknown;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
}

function unary(c: Client, method: string, request: unknown, md: Record<string, string> = {}, deadlineMs = 10_000) {
  return new Promise<CallResult>((resolve) => {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) metadata.set(k, v);
    let headers: Record<string, unknown> = {};
    let answer: { error: grpc.ServiceError | null; value: unknown } | null = null;
    const call = c[method](
      request,
      metadata,
      { deadline: Date.now() + deadlineMs },
      (error: grpc.ServiceError | null, value: unknown) => {
        answer = { error, value };
      },
    );
    call.on('metadata', (m: grpc.Metadata) => {
      headers = m.getMap();
    });
    // The callback comes first, then the status with the trailers.
    call.on('status', (s: grpc.StatusObject) => resolve({ ...answer!, headers, trailers: s.metadata.getMap() }));
  });
}

const inferRequest = (values: number[], id = 'r1') => ({
  model_name: 'sum',
  id,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [String(values.length)], contents: { fp32_contents: values } }],
});

test('ModelInfer through the proxy (sidecar, and gateway with x-canary-deployment) answers as the server does directly', async () => {
  const model = await startGrpcInferServer({ version: 'v1' });
  cleanups.push(() => model.close());
  const table = { version: 1, deployments: { sum: route('sum', model.url, null) } };
  const sidecar = await startTestProxy(table, { config: { deployment: 'sum' } });
  const gateway = await startTestProxy(table);
  cleanups.push(
    () => sidecar.close(),
    () => gateway.close(),
  );

  const direct = await unary(client(model.url), 'ModelInfer', inferRequest([1, 2, 3.5]));
  assert.equal(direct.error, null);
  const viaSidecar = await unary(client(sidecar.url), 'ModelInfer', inferRequest([1, 2, 3.5]));
  const viaGateway = await unary(client(gateway.url), 'ModelInfer', inferRequest([1, 2, 3.5]), {
    'x-canary-deployment': 'sum',
  });
  for (const via of [viaSidecar, viaGateway]) {
    assert.equal(via.error, null, via.error?.message);
    assert.deepEqual(via.value, direct.value);
    assert.equal(via.trailers['x-served-by'], 'v1');
    assert.equal(via.headers['x-canary-variant'], 'baseline');
    assert.equal(via.headers['x-canary-version'], 'v1');
    assert.ok(via.headers['x-request-id']);
  }
});

async function proxyWith(deployments: Record<string, unknown>, config: Record<string, unknown> = {}) {
  const proxy = await startTestProxy({ version: 1, deployments }, { config });
  cleanups.push(() => proxy.close());
  return proxy;
}

async function server(opts: Parameters<typeof startGrpcInferServer>[0] = {}) {
  const s = await startGrpcInferServer(opts);
  cleanups.push(() => s.close());
  return s;
}

const stats = (proxy: Awaited<ReturnType<typeof proxyWith>>, version: string, deployment = 'sum') =>
  proxy.stats.read(deployment, version, Date.now() - 60_000, Date.now() + 1000);

test('status codes, details and trailers reach the client unchanged; the caller’s codes are never the model’s failures', async () => {
  const model = await server();
  const proxy = await proxyWith({ sum: route('sum', model.url, null) }, { deployment: 'sum' });
  const cases = [
    ['empty input', { model_name: 'sum', inputs: [] }],
    ['unknown model', { model_name: 'nope', inputs: inferRequest([1]).inputs }],
  ] as const;
  for (const [what, request] of cases) {
    const direct = await unary(client(model.url), 'ModelInfer', request);
    const via = await unary(client(proxy.url), 'ModelInfer', request);
    assert.ok(direct.error, what);
    assert.equal(via.error?.code, direct.error.code, what);
    assert.equal(via.error?.details, direct.error.details, what);
    assert.equal(via.trailers['x-served-by'], 'v1', what);
  }
  await eventually(async () => {
    const s = await stats(proxy, 'v1');
    assert.equal(s.requests, 2, `requests ${s.requests}`);
    assert.equal(s.clientErrors, 2, `client errors ${s.clientErrors}`);
    assert.equal(s.modelErrors, 0);
  }, 10_000);
});

test('deadlines propagate (grpc-timeout reaches the model); health checks, a server stream and a bidi stream pass through', async () => {
  const model = await server();
  const proxy = await proxyWith({ sum: route('sum', model.url, null) }, { deployment: 'sum' });
  const c = client(proxy.url);
  const r = await unary(c, 'ModelInfer', inferRequest([2]), {}, 4000);
  assert.equal(r.error, null);
  const left = model.deadlines.at(-1);
  assert.ok(left !== null && left !== undefined && left > 0 && left <= 4000, `deadline at the model: ${left}`);

  const health = client(proxy.url, Health);
  const check = await unary(health, 'Check', { service: '' });
  assert.equal((check.value as { status: string }).status, 'SERVING');
  const watched = await new Promise<string[]>((resolve, reject) => {
    const seen: string[] = [];
    const call = (
      health as unknown as Record<string, (r: unknown) => grpc.ClientReadableStream<{ status: string }>>
    ).Watch({
      service: '',
    });
    call.on('data', (m) => seen.push(m.status));
    call.on('error', reject);
    call.on('end', () => resolve(seen));
  });
  assert.deepEqual(watched, ['SERVING', 'NOT_SERVING']);

  const bidi = (
    c as unknown as Record<
      string,
      () => grpc.ClientDuplexStream<
        unknown,
        { infer_response: { outputs: { contents: { fp32_contents: number[] } }[] } }
      >
    >
  ).ModelStreamInfer();
  const sums: number[] = [];
  // Ping-pong: each request is written only after the previous answer came back, as an
  // interactive client would; a proxy that waited for the whole request stream would hang here.
  const done = new Promise<void>((resolve, reject) => {
    bidi.on('data', (m) => {
      sums.push(m.infer_response.outputs[0].contents.fp32_contents[0]);
      if (sums.length < 3) bidi.write(inferRequest([sums.length + 1, 10], `s${sums.length}`));
      else bidi.end();
    });
    bidi.on('error', reject);
    bidi.on('end', resolve);
  });
  bidi.write(inferRequest([0, 10], 's0'));
  await done;
  assert.deepEqual(sums, [10, 12, 13]);
});

test('a streaming call is judged as a stream: its time to first message is its TTFT, each message a token', async () => {
  const model = await server({ latencyMs: 200 });
  const proxy = await proxyWith({ sum: route('sum', model.url, null) }, { deployment: 'sum' });
  const c = client(proxy.url);
  const bidi = (c as unknown as Record<string, () => grpc.ClientDuplexStream<unknown, unknown>>).ModelStreamInfer();
  const answers = new Promise<number>((resolve, reject) => {
    let n = 0;
    bidi.on('data', () => n++);
    bidi.on('error', reject);
    bidi.on('end', () => resolve(n));
  });
  for (let i = 0; i < 4; i++) bidi.write(inferRequest([i], `s${i}`));
  bidi.end();
  assert.equal(await answers, 4);
  // A unary call beside it is judged by its latency, not counted as a stream.
  assert.equal((await unary(c, 'ModelInfer', inferRequest([1]))).error, null);
  await eventually(async () => {
    const s = await stats(proxy, 'v1');
    assert.equal(s.requests, 2, `calls ${s.requests}`);
    assert.equal(s.streams?.streams, 1, `streams ${JSON.stringify(s.streams)}`);
    assert.equal(s.streams?.outputTokens, 4);
    assert.equal(s.streams?.ends.complete, 1);
    // The first message left the model 200 ms after its request (a lower bound: a busy machine only adds).
    assert.ok((s.streams?.ttft.p50 ?? 0) >= 150, `TTFT p50 ${s.streams?.ttft.p50}`);
  }, 10_000);
});

test('a 4 MB request and 200 concurrent calls multiplexed on one client connection', async () => {
  const model = await server();
  const proxy = await proxyWith({ sum: route('sum', model.url, null) }, { deployment: 'sum' });
  const c = client(proxy.url);
  const big = Array.from({ length: 1_000_000 }, (_, i) => i % 7); // 1M floats ≈ 5 MB on the wire
  const r = await unary(c, 'ModelInfer', inferRequest(big), {}, 30_000);
  assert.equal(r.error, null, r.error?.message);
  const sum = big.reduce((a, v) => a + v, 0);
  assert.equal(
    (r.value as { outputs: { contents: { fp32_contents: number[] } }[] }).outputs[0].contents.fp32_contents[0],
    sum,
  );

  const all = await Promise.all(
    Array.from({ length: 200 }, (_, i) => unary(c, 'ModelInfer', inferRequest([i]), {}, 30_000)),
  );
  assert.equal(all.filter((x) => x.error).length, 0);
  assert.deepEqual(
    all.map(
      (x) => (x.value as { outputs: { contents: { fp32_contents: number[] } }[] }).outputs[0].contents.fp32_contents[0],
    ),
    all.map((_, i) => i),
  );
});

const sumOf = (r: CallResult) =>
  (r.value as { outputs: { contents: { fp32_contents: number[] } }[] }).outputs[0].contents.fp32_contents[0];

test('a canary failing 40% of calls with UNAVAILABLE: every call is answered (retried on the baseline) and the failures are the canary’s', async () => {
  const baseline = await server({ version: 'v1' });
  const canary = await server({ version: 'v2', errorRate: 0.4 });
  // Stats through the real Redis store, as the control plane reads them.
  const redis = new Redis(REDIS_URL);
  cleanups.push(() => void redis.quit());
  const proxy = await startTestProxy(
    {
      version: 1,
      deployments: {
        sum: route('sum', baseline.url, canary.url, 50, { settings: { retryMethods: ['*'], hedgeCanaryAfter: 'off' } }),
      },
    },
    { config: { deployment: 'sum' }, stats: new RedisStatsStore(redis, testPrefix()) },
  );
  cleanups.push(() => proxy.close());
  const c = client(proxy.url);
  const all = await Promise.all(Array.from({ length: 200 }, (_, i) => unary(c, 'ModelInfer', inferRequest([i]))));
  assert.deepEqual(
    all.filter((r) => r.error).map((r) => r.error?.message),
    [],
  );
  assert.deepEqual(
    all.map(sumOf),
    all.map((_, i) => i),
  );
  const retried = all.filter((r) => r.headers['x-canary-retried-from'] === 'v2').length;
  await eventually(async () => {
    const s = await stats(proxy, 'v2');
    assert.ok(
      s.modelErrors > 10 && s.modelErrors === retried,
      `canary model errors ${s.modelErrors}, retried ${retried}`,
    );
    assert.deepEqual(s.grpc, { OK: s.requests - retried, UNAVAILABLE: retried });
    const b = await stats(proxy, 'v1');
    assert.deepEqual(b.grpc, { OK: b.requests }, 'the baseline: its own calls and none of the retries');
  }, 10_000);
  const metrics = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
  const line = (role: string, code: string) =>
    metrics
      .split('\n')
      .find(
        (l) =>
          l.startsWith('canary_proxy_grpc_calls_total{') &&
          l.includes(`role="${role}"`) &&
          l.includes(`grpc_code="${code}"`),
      );
  assert.match(
    line('canary', 'UNAVAILABLE') ?? '',
    new RegExp(`method="/inference.GRPCInferenceService/ModelInfer".* ${retried}$`),
  );
  assert.ok(line('baseline', 'OK'), 'baseline OK calls counted');
});

test('by default a unary call the canary fails is retried on the baseline from its streamed body; not past 1 MiB, nor when retries are off', async () => {
  const baseline = await server({ version: 'v1' });
  const canary = await server({ version: 'v2', errorRate: 1 });
  const proxy = await proxyWith({ sum: route('sum', baseline.url, canary.url, 100) }, { deployment: 'sum' });
  const c = client(proxy.url);
  // (First: failures in a row trip the canary, and later calls go to the baseline.)
  // A request past the kept copy (1 MiB) cannot be sent again: the canary's own answer reaches the client.
  const big = await unary(c, 'ModelInfer', inferRequest(Array.from({ length: 400_000 }, () => 1)));
  assert.equal(big.error?.code, grpc.status.UNAVAILABLE, JSON.stringify(big.headers));
  assert.equal(big.error?.details, 'v2: injected failure');
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => unary(c, 'ModelInfer', inferRequest([i, 1]))));
  assert.deepEqual(
    all.map((r) => r.error?.message ?? sumOf(r)),
    all.map((_, i) => i + 1),
  );
  assert.ok(all.every((r) => r.headers['x-canary-version'] === 'v1'));
  // (Routed to the canary and retried, unless the trip had diverted the call already.)
  const retried = all.filter((r) => r.headers['x-canary-retried-from'] === 'v2').length;
  assert.ok(retried > 0, 'calls retried');
  await eventually(async () => {
    const s = await stats(proxy, 'v2');
    assert.equal(s.modelErrors, 1 + retried, `model errors ${s.modelErrors}, retried ${retried}`);
  }, 10_000);

  const off = await proxyWith(
    { sum: route('sum', baseline.url, canary.url, 100, { retryCanaryOnBaseline: false }) },
    { deployment: 'sum' },
  );
  const r = await unary(client(off.url), 'ModelInfer', inferRequest([1]));
  assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
  assert.equal(r.error?.details, 'v2: injected failure');
});

test('a hanging canary is hedged and a canary without the method (UNIMPLEMENTED) is retried: no call fails', async () => {
  const baseline = await server({ version: 'v1' });
  const hanging = await server({ version: 'v2', hangRate: 1 });
  const hedged = await proxyWith(
    {
      sum: route('sum', baseline.url, hanging.url, 100, {
        settings: { retryMethods: ['/inference.GRPCInferenceService/ModelInfer'], hedgeCanaryAfter: 50 },
      }),
    },
    { deployment: 'sum' },
  );
  // A deadline well past the hedge delay: a call that waited on the canary would miss it.
  const h = await Promise.all(
    Array.from({ length: 20 }, (_, i) => unary(client(hedged.url), 'ModelInfer', inferRequest([i]), {}, 5000)),
  );
  assert.deepEqual(
    h.map((r) => r.error?.message ?? null),
    h.map(() => null),
  );
  assert.ok(h.every((r) => r.headers['x-canary-hedged-from'] === 'v2' && r.headers['x-canary-version'] === 'v1'));

  const lacking = await server({ version: 'v3', missing: ['ModelInfer'] });
  const retried = await proxyWith(
    {
      sum: route('sum', baseline.url, lacking.url, 100, { settings: { retryMethods: ['*'], hedgeCanaryAfter: 'off' } }),
    },
    { deployment: 'sum' },
  );
  const u = await Promise.all(
    Array.from({ length: 20 }, (_, i) => unary(client(retried.url), 'ModelInfer', inferRequest([i]))),
  );
  assert.deepEqual(
    u.map((r) => r.error?.message ?? null),
    u.map(() => null),
  );
  await eventually(async () => {
    const s = await stats(retried, 'v2');
    assert.equal(s.modelErrors, 20, `UNIMPLEMENTED counted as the canary's failure: ${s.modelErrors}`);
  }, 10_000);
});

test('an h2c:// canary in its shadow phase is shadowed over HTTP/2: its answers compared byte for byte, its failures counted from grpc-status', async () => {
  const baseline = await server({ version: 'v1' });
  // Answers naming the same model version are the same bytes; a quarter of calls fail.
  const canary = await server({ version: 'v1', errorRate: 0.25 });
  const shadow = { percent: 100, noisePercent: 0, timeoutMs: 5000, maxConcurrency: 1000, maxProxyLagMs: 60_000 };
  const proxy = await proxyWith(
    { sum: route('sum', baseline.url, canary.url, 0, { shadow, settings: { retryMethods: ['*'] } }) },
    { deployment: 'sum' },
  );
  const c = client(proxy.url);
  const all = await Promise.all(Array.from({ length: 40 }, (_, i) => unary(c, 'ModelInfer', inferRequest([i]))));
  assert.ok(all.every((r) => r.error === null && r.headers['x-canary-variant'] === 'baseline'));
  await eventually(async () => {
    const a = (await stats(proxy, 'v2')).agreement!;
    assert.equal(a.compared + a.errors, 40, `shadows ${JSON.stringify(a)}`);
    assert.ok(a.errors > 0 && a.agreed === a.compared, `shadows ${JSON.stringify(a)}`);
  }, 10_000);
  assert.equal(canary.calls.get('ModelInfer'), 40, 'every call mirrored to the canary');
});

test('a GOAWAY from the model server mid-load loses no call', async () => {
  const model = await server();
  const proxy = await proxyWith({ sum: route('sum', model.url, null) }, { deployment: 'sum' });
  const c = client(proxy.url);
  const calls: Promise<CallResult>[] = [];
  for (let i = 0; i < 300; i++) {
    calls.push(unary(c, 'ModelInfer', inferRequest([i]), {}, 30_000));
    if (i % 100 === 50) {
      await calls.at(-1);
      model.goAway();
    }
  }
  const all = await Promise.all(calls);
  assert.deepEqual(
    all.filter((r) => r.error).map((r) => r.error?.message),
    [],
  );
  assert.deepEqual(
    all.map(sumOf),
    all.map((_, i) => i),
  );
});

test('bad input gets a gRPC status a gRPC client can read', async () => {
  const model = await server();
  const http1 = await startTestProxy({ version: 1, deployments: {} });
  cleanups.push(() => http1.close());
  const proxy = await proxyWith({
    sum: route('sum', model.url, null),
    plain: route('plain', 'http://127.0.0.1:9', null),
  });
  const unknown = await unary(client(proxy.url), 'ModelInfer', inferRequest([1]), { 'x-canary-deployment': 'nope' });
  assert.equal(unknown.error?.code, grpc.status.NOT_FOUND);
  assert.match(unknown.error!.details, /UNKNOWN_DEPLOYMENT: no route for deployment "nope"/);
  const noName = await unary(client(proxy.url), 'ModelInfer', inferRequest([1]));
  assert.equal(noName.error?.code, grpc.status.NOT_FOUND);
  const mismatch = await unary(client(proxy.url), 'ModelInfer', inferRequest([1]), { 'x-canary-deployment': 'plain' });
  assert.equal(mismatch.error?.code, grpc.status.UNIMPLEMENTED);
  assert.match(
    mismatch.error!.details,
    /served at http:\/\/127\.0\.0\.1:9 \(HTTP\/1\.1\); a gRPC call needs an h2c:\/\/ model server URL/,
  );
  // A call over the body limit (streamed: a gRPC request has no Content-Length) is cut at the
  // limit with a status; the same connection goes on serving.
  const small = await proxyWith({ sum: route('sum', model.url, null) }, { maxBodyBytes: 64 * 1024 });
  const onOneConnection = client(small.url);
  const big = await unary(onOneConnection, 'ModelInfer', inferRequest(Array(100_000).fill(1)), {
    'x-canary-deployment': 'sum',
  });
  assert.equal(big.error?.code, grpc.status.RESOURCE_EXHAUSTED, big.error?.details);
  assert.match(big.error!.details, /BODY_TOO_LARGE: .*request body exceeds 65536 bytes/);
  const after = await unary(onOneConnection, 'ModelInfer', inferRequest([1, 2]), { 'x-canary-deployment': 'sum' });
  assert.equal(after.error, null);
});

/** One call by Debian's python3-grpcio (an independent gRPC implementation), raw message bytes both ways. */
function pythonCall(target: string, method: string, request: Buffer, md: Record<string, string> = {}) {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/grpc_call.py');
  const pairs = Object.entries(md).map(([k, v]) => `${k}=${v}`);
  return new Promise<{ code: string; details: string | null; answer: string | null; trailers: Record<string, string> }>(
    (resolve, reject) =>
      execFile(
        '/usr/bin/python3',
        [script, target.replace(/^\w+:\/\//, ''), method, request.toString('hex'), ...pairs],
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(JSON.parse(out))),
      ),
  );
}

test('python3-grpcio, an independent client, gets the same answers, codes and trailers through the proxy as directly', async () => {
  const model = await server();
  const proxy = await proxyWith({ sum: route('sum', model.url, null) });
  const root = new protobuf.Root().loadSync(
    path.join(path.dirname(fileURLToPath(import.meta.url)), '../../model-servers/protos/inference.proto'),
    { keepCase: true },
  );
  // A Trailers-Only answer carries the proxy's headers in its one HEADERS frame, so they show as trailers.
  const comparable = (r: Awaited<ReturnType<typeof pythonCall>>) => {
    const { date: _d, 'x-canary-variant': _v, 'x-canary-version': _n, 'x-request-id': _r, ...trailers } = r.trailers;
    return { ...r, trailers };
  };
  const Request = root.lookupType('inference.ModelInferRequest');
  const encode = (m: object) => Buffer.from(Request.encode(Request.fromObject(m)).finish());
  const infer = '/inference.GRPCInferenceService/ModelInfer';
  const cases: [string, Buffer][] = [
    [infer, encode(inferRequest([1.5, 2.5]))],
    [infer, encode({ model_name: 'sum', inputs: [] })],
    ['/inference.GRPCInferenceService/ServerLive', Buffer.alloc(0)],
    ['/grpc.health.v1.Health/Check', Buffer.alloc(0)],
  ];
  for (const [method, request] of cases) {
    const direct = await pythonCall(model.url, method, request);
    const via = await pythonCall(proxy.url, method, request, { 'x-canary-deployment': 'sum' });
    assert.deepEqual(comparable(via), comparable(direct), method);
  }
  assert.equal((await pythonCall(proxy.url, infer, cases[0][1], { 'x-canary-deployment': 'sum' })).code, 'OK');
  assert.equal(
    (await pythonCall(proxy.url, infer, cases[1][1], { 'x-canary-deployment': 'sum' })).code,
    'INVALID_ARGUMENT',
  );
});

test('curl --http2-prior-knowledge and HTTP/1.1 clients share the data port; JSON over HTTP/2 reaches an HTTP/1.1 model', async () => {
  const json = await startUpstream((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive' });
      res.end(JSON.stringify({ got: JSON.parse(body || 'null'), http: req.httpVersion, path: req.url }));
    });
  });
  cleanups.push(() => json.close());
  const proxy = await proxyWith({ m: route('m', json.url, null) });
  const curl = (args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile('curl', ['-sS', '-i', ...args], (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      ),
    );
  const h2 = await curl([
    '--http2-prior-knowledge',
    '-H',
    'content-type: application/json',
    '-d',
    '{"x":[1,2]}',
    `${proxy.url}/m/predict`,
  ]);
  assert.match(h2, /^HTTP\/2 200/);
  assert.match(h2, /x-canary-variant: baseline/);
  assert.ok(h2.endsWith('{"got":{"x":[1,2]},"http":"1.1","path":"/predict"}'), h2);
  const h1 = await curl(['-d', '{"x":[3]}', '-H', 'content-type: application/json', `${proxy.url}/m/predict`]);
  assert.match(h1, /^HTTP\/1\.1 200 OK/);
  assert.ok(h1.endsWith('{"got":{"x":[3]},"http":"1.1","path":"/predict"}'), h1);
  const missing = await curl(['--http2-prior-knowledge', `${proxy.url}/nope/x`]);
  assert.match(missing, /^HTTP\/2 404/);
  assert.match(missing, /UNKNOWN_DEPLOYMENT/);
});

test('an HTTP/2 client gets every feature an HTTP/1.1 client does: split, sticky key, forced variant, retry, request id, limits, stats', async () => {
  const baseline = await echoUpstream('v1');
  const canary = await startUpstream((req, res) => {
    req.resume();
    // Fails every request without a key, answers the sticky ones.
    req.on('end', () => {
      res.writeHead(req.headers['x-canary-key'] ? 200 : 503, { 'content-type': 'application/json' });
      res.end('{"who":"v2"}');
    });
  });
  cleanups.push(
    () => baseline.close(),
    () => canary.close(),
  );
  const proxy = await proxyWith(
    { m: route('m', baseline.url, canary.url, 50, { settings: { allowForcedVariant: true } }) },
    { maxBodyBytes: 64 * 1024 },
  );
  const session = http2.connect(proxy.url);
  cleanups.push(() => void session.close());
  const h2 = (headers: Record<string, string>, body?: Buffer) =>
    new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const s = session.request({
        ':method': 'POST',
        ':path': '/m/predict',
        'content-type': 'application/json',
        ...headers,
      });
      s.end(body ?? '{"x":1}');
      let got: http2.IncomingHttpHeaders = {};
      let text = '';
      s.on('response', (h) => (got = h));
      s.setEncoding('utf8');
      s.on('data', (c) => (text += c));
      s.on('end', () => resolve({ status: Number(got[':status']), headers: got, body: text }));
      s.on('error', reject);
    });
  // The split, by sticky keys (the canary answers requests with a key).
  const keyed = await Promise.all(Array.from({ length: 40 }, (_, i) => h2({ 'x-canary-key': `user-${i}` })));
  const onCanary = keyed.filter((r) => r.headers['x-canary-variant'] === 'canary').length;
  assert.ok(onCanary > 5 && onCanary < 35, `${onCanary} of 40 keys on the canary at a 50% weight`);
  // Sticky keys: one key, one variant, every time.
  for (const key of ['alice', 'bob', 'carol', 'dave']) {
    const seen = new Set(
      (await Promise.all(Array.from({ length: 8 }, () => h2({ 'x-canary-key': key })))).map(
        (r) => r.headers['x-canary-variant'],
      ),
    );
    assert.equal(seen.size, 1, `key ${key}: ${[...seen]}`);
  }
  // Split with retries: every canary draw fails and is answered by the baseline.
  const all = await Promise.all(Array.from({ length: 100 }, () => h2({})));
  assert.ok(all.every((r) => r.status === 200 && r.body.includes('"who":"v1"')));
  const retried = all.filter((r) => r.headers['x-canary-retried-from'] === 'v2').length;
  // (Eight failures in a row trip the canary; later draws go to the baseline.)
  assert.ok(retried >= 8, `${retried} canary draws retried`);
  const forced = await h2({ 'x-canary-force': 'canary', 'x-canary-key': 'k' });
  assert.equal(forced.headers['x-canary-variant'], 'canary');
  assert.equal(forced.headers['x-canary-forced'], 'true');
  const id = await h2({ 'x-request-id': 'req-h2-1' });
  assert.equal(id.headers['x-request-id'], 'req-h2-1');
  const big = await h2({}, Buffer.alloc(100 * 1024, 32));
  assert.equal(big.status, 413);
  assert.match(big.body, /BODY_TOO_LARGE/);
  await eventually(async () => {
    const s = await stats(proxy, 'v2', 'm');
    assert.equal(s.modelErrors, retried, `canary model errors ${s.modelErrors}, retried ${retried}`);
  }, 10_000);
});

test('which codes are the model’s failures is a per-deployment setting (grpcModelErrors)', async () => {
  const model = await server();
  const strict = await proxyWith(
    { sum: route('sum', model.url, null, 0, { settings: { grpcModelErrors: ['INVALID_ARGUMENT', 'UNAVAILABLE'] } }) },
    { deployment: 'sum' },
  );
  const r = await unary(client(strict.url), 'ModelInfer', { model_name: 'sum', inputs: [] });
  assert.equal(r.error?.code, grpc.status.INVALID_ARGUMENT);
  await eventually(async () => {
    const s = await stats(strict, 'v1');
    assert.equal(s.modelErrors, 1, `INVALID_ARGUMENT charged to the model here: ${s.modelErrors}`);
  }, 10_000);
  await assert.rejects(
    () =>
      startTestProxy({
        version: 1,
        deployments: { sum: route('sum', model.url, null, 0, { settings: { grpcModelErrors: ['OK'] } }) },
      }),
    /grpcModelErrors: expected gRPC status code names other than OK/,
  );
});

test('6,000 calls to model servers in their own processes (20% canary, hedging on) keep healthy sessions: no reset of streams the server ended', async () => {
  // A node server closes a session (GOAWAY INTERNAL_ERROR) that sends it too many frames for
  // streams it already closed, as an RST_STREAM after every finished call did.
  const v1 = await spawnModelServer('grpc', ['--version', 'v1'], { LOG_LEVEL: 'warn' });
  const v2 = await spawnModelServer('grpc', ['--version', 'v2'], { LOG_LEVEL: 'warn' });
  cleanups.push(
    () => v1.stop(),
    () => v2.stop(),
  );
  const proxy = await proxyWith({ sum: route('sum', v1.ready.url, v2.ready.url, 20) }, { deployment: 'sum' });
  const c = client(proxy.url);
  const failures = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < 6000) {
        next++;
        const r = await unary(c, 'ModelInfer', inferRequest([1]), {}, 30_000);
        if (r.error) failures.set(r.error.message, (failures.get(r.error.message) ?? 0) + 1);
      }
    }),
  );
  assert.deepEqual([...failures], []);
});

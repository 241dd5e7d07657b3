import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadInferenceProtos, startGrpcInferServer } from '../../model-servers/grpc-infer.js';
import { route, startTestProxy } from '../helpers/servers.js';

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

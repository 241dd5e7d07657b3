import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { seededRandom } from '../common/random.js';

/**
 * A reference gRPC model server speaking the open inference protocol (KServe v2 / Triton) and
 * grpc.health.v1, for tests, benches and demos of gRPC canaries. Its one model, `sum`, answers
 * each FP32 input tensor with the sum of its values; faults are seeded, so runs repeat.
 */
export interface GrpcInferBehaviour {
  version: string;
  /** Share of ModelInfer calls that fail with `errorCode`. */
  errorRate: number;
  errorCode: grpc.status;
  /** Share of calls that never answer (until the client's deadline or cancel). */
  hangRate: number;
  latencyMs: number;
  /** Methods this server does not implement (a canary missing what the baseline serves). */
  missing: readonly string[];
  seed: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const LOAD_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The package definitions of both protocols (for servers and clients alike). */
export function loadInferenceProtos() {
  const inference = grpc.loadPackageDefinition(
    protoLoader.loadSync(path.join(here, 'protos/inference.proto'), LOAD_OPTIONS),
  ) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } };
  const health = grpc.loadPackageDefinition(
    protoLoader.loadSync(path.join(here, 'protos/health.proto'), LOAD_OPTIONS),
  ) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  return { Inference: inference.inference.GRPCInferenceService, Health: health.grpc.health.v1.Health };
}

export interface RunningGrpcInferServer {
  url: string;
  port: number;
  /** Calls received per method name. */
  calls: Map<string, number>;
  /** The grpc-timeout each ModelInfer call arrived with (its deadline as the server sees it). */
  deadlines: (number | null)[];
  /**
   * Sends GOAWAY on every connection as an abruptly restarting server does (last stream id 0:
   * calls it had not answered are refused) and keeps serving new connections.
   */
  goAway(): void;
  close(): Promise<void>;
}

interface Tensor {
  name: string;
  datatype: string;
  shape: string[];
  contents?: { fp32_contents?: number[] };
}

export async function startGrpcInferServer(
  opts: Partial<GrpcInferBehaviour> & { port?: number; host?: string } = {},
): Promise<RunningGrpcInferServer> {
  const b: GrpcInferBehaviour = {
    version: 'v1',
    errorRate: 0,
    errorCode: grpc.status.UNAVAILABLE,
    hangRate: 0,
    latencyMs: 0,
    missing: [],
    seed: 1,
    ...opts,
  };
  const random = seededRandom(b.seed);
  const { Inference, Health } = loadInferenceProtos();
  const server = new grpc.Server();
  const calls = new Map<string, number>();
  const deadlines: (number | null)[] = [];
  const count = (m: string) => calls.set(m, (calls.get(m) ?? 0) + 1);
  const served = () => {
    const md = new grpc.Metadata();
    md.set('x-served-by', b.version);
    return md;
  };
  const later = (fn: () => void) => (b.latencyMs > 0 ? setTimeout(fn, b.latencyMs) : setImmediate(fn));

  const infer = (request: { model_name: string; id: string; inputs: Tensor[] }) => {
    if (request.model_name !== 'sum')
      return { error: { code: grpc.status.NOT_FOUND, details: `unknown model ${JSON.stringify(request.model_name)}` } };
    if (!request.inputs.length)
      return { error: { code: grpc.status.INVALID_ARGUMENT, details: 'expected at least one input tensor' } };
    const outputs = request.inputs.map((t) => ({
      name: `${t.name}_sum`,
      datatype: 'FP32',
      shape: ['1'],
      contents: { fp32_contents: [(t.contents?.fp32_contents ?? []).reduce((a, v) => a + v, 0)] },
    }));
    return { answer: { model_name: 'sum', model_version: b.version, id: request.id, outputs } };
  };

  const impl: Record<string, grpc.UntypedHandleCall> = {
    ServerLive: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      count('ServerLive');
      cb(null, { live: true });
    },
    ServerReady: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      count('ServerReady');
      cb(null, { ready: true });
    },
    ModelReady: (call: grpc.ServerUnaryCall<{ name: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      count('ModelReady');
      cb(null, { ready: call.request.name === 'sum' });
    },
    ModelInfer: (
      call: grpc.ServerUnaryCall<{ model_name: string; id: string; inputs: Tensor[] }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      count('ModelInfer');
      const deadline = call.getDeadline();
      deadlines.push(
        deadline instanceof Date
          ? deadline.getTime() - Date.now()
          : Number.isFinite(deadline)
            ? Number(deadline) - Date.now()
            : null,
      );
      const draw = random();
      if (draw < b.hangRate) return; // never answers: the client's deadline or cancel ends it
      later(() => {
        if (draw < b.hangRate + b.errorRate)
          return cb({ code: b.errorCode, details: `${b.version}: injected failure`, metadata: served() });
        const r = infer(call.request);
        if (r.error) return cb({ ...r.error, metadata: served() });
        cb(null, r.answer, served());
      });
    },
    ModelStreamInfer: (
      call: grpc.ServerDuplexStream<{ model_name: string; id: string; inputs: Tensor[] }, unknown>,
    ) => {
      count('ModelStreamInfer');
      // Each answer takes the server's latency; the call ends after the last one.
      let pending = 0;
      let ended = false;
      call.on('data', (request) => {
        pending++;
        later(() => {
          const r = infer(request);
          call.write(r.error ? { error_message: r.error.details } : { infer_response: r.answer });
          if (--pending === 0 && ended) call.end(served());
        });
      });
      call.on('end', () => {
        ended = true;
        if (pending === 0) call.end(served());
      });
    },
  };
  for (const m of b.missing) delete impl[m];
  server.addService(Inference.service, impl);
  server.addService(Health.service, {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      count('Check');
      cb(null, { status: 'SERVING' });
    },
    Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      count('Watch');
      call.write({ status: 'SERVING' });
      const t = setTimeout(() => {
        call.write({ status: 'NOT_SERVING' });
        call.end();
      }, 20);
      call.on('cancelled', () => clearTimeout(t));
    },
  });
  const host = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const sessions = (
    server as unknown as { http2Servers: Map<unknown, { sessions: Set<import('node:http2').Http2Session> }> }
  ).http2Servers;
  return {
    url: `h2c://${host}:${port}`,
    port,
    calls,
    deadlines,
    goAway() {
      for (const { sessions: set } of sessions.values()) for (const s of set) s.goaway();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000).unref();
      }),
  };
}

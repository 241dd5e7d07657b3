import { createLogger } from '../common/logger.js';
import { FaultConfigError, faultsFromEnv, parseFaults } from './faults.js';
import { startGrpcInferServer } from './grpc-infer.js';
import { parseLlmBehaviour, startLlmServer } from './llm.js';
import { MODEL_NAMES, type ModelName } from './models.js';
import { startModelServer } from './server.js';

export interface ModelServerArgs {
  model?: string;
  version?: string;
  port?: string;
  host?: string;
  errorRate?: string;
  latency?: string;
  jitter?: string;
  hangRate?: string;
  /** --model llm: the reference streaming LLM server's behaviour (model-servers/llm.ts). */
  ttft?: string;
  tpot?: string;
  tokens?: string;
  lengthScale?: string;
  errorEventRate?: string;
  cutRate?: string;
}

const portOf = (v: string | undefined) => {
  const port = Number(v ?? process.env.PORT ?? 8000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: expected 0-65535, got ${v}`);
  return port;
};

/** Tooling (the demo, tests) reads this line to learn the port when started with --port 0. */
function announce(ready: Record<string, unknown>, close: () => Promise<void>): void {
  process.stdout.write(`${JSON.stringify({ ready: true, ...ready })}\n`);
  const stop = () => void close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** `canary model-server --model llm [--ttft 20ms] [--tpot 5ms] [--tokens 10-60] ...` */
async function runLlmServer(args: ModelServerArgs): Promise<void> {
  const logger = createLogger('canary-model-server');
  for (const [flag, v] of [
    ['--latency', args.latency],
    ['--jitter', args.jitter],
    ['--hang-rate', args.hangRate],
  ] as const)
    if (v !== undefined)
      throw new FaultConfigError(`${flag} is for the iris models; --model llm takes --ttft and --tpot`);
  const behaviour = parseLlmBehaviour({
    ttftMs: args.ttft,
    tpotMs: args.tpot,
    tokens: args.tokens,
    lengthScale: args.lengthScale,
    errorEventRate: args.errorEventRate,
    cutRate: args.cutRate,
    errorRate: args.errorRate,
  });
  const server = await startLlmServer({
    version: args.version ?? process.env.CANARY_MODEL_VERSION ?? 'llm',
    port: portOf(args.port),
    host: args.host ?? process.env.HOST ?? '127.0.0.1',
    behaviour,
  });
  logger.info({ url: server.url, version: server.version, behaviour }, 'LLM model server listening');
  announce({ url: server.url, version: server.version }, server.close);
}

/** `canary model-server --model grpc [--port 8001] [--error-rate 0.4] [--latency 5ms] [--hang-rate 0]`: gRPC on h2c. */
async function runGrpcServer(args: ModelServerArgs): Promise<void> {
  const logger = createLogger('canary-model-server');
  const faults = parseFaults({ errorRate: args.errorRate, latencyMs: args.latency, hangRate: args.hangRate });
  if (args.jitter !== undefined) throw new FaultConfigError('--jitter is for the iris models');
  const server = await startGrpcInferServer({
    version: args.version ?? process.env.CANARY_MODEL_VERSION ?? 'grpc',
    port: portOf(args.port),
    host: args.host ?? process.env.HOST ?? '127.0.0.1',
    errorRate: faults.errorRate,
    latencyMs: faults.latencyMs,
    hangRate: faults.hangRate,
  });
  logger.info({ url: server.url, faults }, 'gRPC model server listening (open inference protocol, grpc.health.v1)');
  announce({ url: server.url }, server.close);
}

/** `canary model-server --model v1 [--port 8000] [--error-rate 0.1] [--latency 20ms] ...` */
export async function runModelServerCommand(args: ModelServerArgs): Promise<void> {
  const logger = createLogger('canary-model-server');
  const model = (args.model ?? process.env.CANARY_MODEL ?? 'v1') as ModelName;
  if ((model as string) === 'llm') return runLlmServer(args);
  if ((model as string) === 'grpc') return runGrpcServer(args);
  if (!MODEL_NAMES.includes(model))
    throw new Error(`--model: expected one of ${MODEL_NAMES.join(', ')}, llm, grpc, got ${JSON.stringify(model)}`);
  const llmOnly = [args.ttft, args.tpot, args.tokens, args.lengthScale, args.errorEventRate, args.cutRate];
  if (llmOnly.some((v) => v !== undefined))
    throw new FaultConfigError(
      '--ttft, --tpot, --tokens, --length-scale, --error-event-rate and --cut-rate need --model llm',
    );
  const env = faultsFromEnv();
  const faults = parseFaults({
    errorRate: args.errorRate ?? env.errorRate,
    latencyMs: args.latency ?? env.latencyMs,
    jitterMs: args.jitter ?? env.jitterMs,
    hangRate: args.hangRate ?? env.hangRate,
  });
  const port = portOf(args.port);
  const server = await startModelServer({
    model,
    version: args.version ?? process.env.CANARY_MODEL_VERSION,
    port,
    host: args.host ?? process.env.HOST ?? '127.0.0.1',
    faults,
  });
  logger.info(
    { url: server.url, version: server.version, accuracy: server.model.accuracy, faults },
    'model server listening',
  );
  announce({ url: server.url, version: server.version, accuracy: server.model.accuracy }, server.close);
}

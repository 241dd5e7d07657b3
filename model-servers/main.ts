import { createLogger } from '../common/logger.js';
import { faultsFromEnv, parseFaults } from './faults.js';
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
}

/** `canary model-server --model v1 [--port 8000] [--error-rate 0.1] [--latency 20ms] ...` */
export async function runModelServerCommand(args: ModelServerArgs): Promise<void> {
  const logger = createLogger('canary-model-server');
  const model = (args.model ?? process.env.CANARY_MODEL ?? 'v1') as ModelName;
  if (!MODEL_NAMES.includes(model))
    throw new Error(`--model: expected one of ${MODEL_NAMES.join(', ')}, got ${JSON.stringify(model)}`);
  const env = faultsFromEnv();
  const faults = parseFaults({
    errorRate: args.errorRate ?? env.errorRate,
    latencyMs: args.latency ?? env.latencyMs,
    jitterMs: args.jitter ?? env.jitterMs,
    hangRate: args.hangRate ?? env.hangRate,
  });
  const port = Number(args.port ?? process.env.PORT ?? 8000);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: expected 0-65535, got ${args.port}`);
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
  // Tooling (the demo, tests) reads this line to learn the port when started with --port 0.
  process.stdout.write(
    `${JSON.stringify({ ready: true, url: server.url, version: server.version, accuracy: server.model.accuracy })}\n`,
  );
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

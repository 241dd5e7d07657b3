import { parseArgs } from 'node:util';
import { ConfigError } from '../common/config.js';

const USAGE = `canary — ship new model versions safely

Servers:
  canary proxy [--workers N]          the data plane (ports 8080 data, 9901 admin)
  canary model-server --model v1|v2|v3 [--port 8000] [--version LABEL]
                      [--error-rate 0.1] [--latency 20ms] [--jitter 5ms] [--hang-rate 0.01]

Environment: see the README ("Configuration").`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'proxy': {
      const { values } = parseArgs({ args: rest, options: { workers: { type: 'string' } } });
      const workers = values.workers === undefined ? 1 : Number(values.workers);
      if (!Number.isInteger(workers) || workers < 1) throw new ConfigError(`--workers: expected a positive integer, got ${values.workers}`);
      const { runProxyCommand } = await import('../proxy/main.js');
      return runProxyCommand({ workers });
    }
    case 'model-server': {
      const { values } = parseArgs({
        args: rest,
        options: {
          model: { type: 'string' }, version: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' },
          'error-rate': { type: 'string' }, latency: { type: 'string' }, jitter: { type: 'string' }, 'hang-rate': { type: 'string' },
        },
      });
      const { runModelServerCommand } = await import('../model-servers/main.js');
      return runModelServerCommand({
        model: values.model, version: values.version, port: values.port, host: values.host,
        errorRate: values['error-rate'], latency: values.latency, jitter: values.jitter, hangRate: values['hang-rate'],
      });
    }
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  process.stderr.write(`canary: ${err.message}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});

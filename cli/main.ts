import { parseArgs } from 'node:util';
import { ConfigError } from '../common/config.js';
import { ApiError } from './client.js';
import { runClientCommand, UsageError } from './commands.js';

const USAGE = `canary — ship new model versions safely

Servers:
  canary up                           control plane + proxy in one process (8090 API, 8080 proxy)
  canary control-plane                the REST API, dashboard and analysis loop (port 8090)
  canary proxy [--workers N]          the data plane (ports 8080 data, 9901 admin)
  canary model-server --model v1|v2|v3 [--port 8000] [--version LABEL]
                      [--error-rate 0.1] [--latency 20ms] [--jitter 5ms] [--hang-rate 0.01]
  canary demo [--keep]                the whole story in under a minute

Client (against CANARY_API_URL, default http://127.0.0.1:8090; add --json for scripts):
  canary deployments
  canary deploy NAME --version V --url URL [--metadata JSON] [--policy JSON]
  canary register NAME --version V --url URL [--metadata JSON]
  canary versions NAME
  canary start NAME --version V [--url URL] [--weight 20] [--steps 1,10,50,100] [--interval 30s] [--policy JSON]
  canary status NAME [--watch]
  canary traffic NAME WEIGHT
  canary promote NAME [--reason TEXT]
  canary rollback NAME [--reason TEXT] [--to VERSION]
  canary pause NAME | canary resume NAME
  canary evaluate NAME
  canary health NAME
  canary metrics NAME [--limit N]
  canary history NAME [--limit N]

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
    case 'up': {
      const { runUpCommand } = await import('../control-plane/main.js');
      return runUpCommand();
    }
    case 'control-plane': {
      const { runControlPlaneCommand } = await import('../control-plane/main.js');
      return runControlPlaneCommand();
    }
    case 'demo': {
      const { values } = parseArgs({ args: rest, options: { keep: { type: 'boolean' } } });
      const { runDemo } = await import('./demo.js');
      return runDemo({ keep: values.keep === true });
    }
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      if (await runClientCommand(command, rest)) return;
      throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  const detail = err instanceof ApiError ? ` [${err.code}]` : '';
  process.stderr.write(`canary: ${err.message}${detail}\n`);
  process.exit(err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 2 : 1);
});

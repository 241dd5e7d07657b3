import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/config.js';
import { didYouMean, optionError, UsageError } from './args.js';
import { ApiError } from './client.js';
import { runClientCommand } from './commands.js';
import { exitCodeOf } from './exit-codes.js';

const USAGE = `canary — ship new model versions safely

Servers:
  canary up [--json]                  control plane + proxy in one process (8090 API, 8080 proxy, 9901 admin, 18000 xDS)
  canary control-plane                the REST API, dashboard and analysis loop (port 8090)
  canary proxy [--workers N]          the data plane (ports 8080 data, 9901 admin)
  canary model-server --model v1|v2|v3 [--port 8000] [--version LABEL]
                      [--error-rate 0.1] [--latency 20ms] [--jitter 5ms] [--hang-rate 0.01]
  canary model-server --model llm [--version LABEL] [--ttft 20ms] [--tpot 5ms] [--tokens 10-60]
                      [--length-scale 1] [--error-event-rate 0] [--cut-rate 0] [--error-rate 0]
                                      an OpenAI-compatible streaming server (/v1/chat/completions)
  canary model-server --model grpc [--port 8001] [--version LABEL] [--error-rate 0] [--latency 5ms]
                      [--hang-rate 0]   a gRPC server (h2c://): open inference protocol, grpc.health.v1
  canary demo [--keep]                the whole story in under a minute

Client (against CANARY_API_URL, default http://127.0.0.1:8090; add --json for scripts):
  canary deployments
  canary deploy NAME --version V --url URL [--metadata JSON] [--policy JSON]
  canary register NAME --version V --url URL [--metadata JSON]
  canary versions NAME
  canary start NAME --version V [--url URL] [--weight 20] [--steps 1,10,50,100] [--interval 30s] [--policy JSON] [--shadow] [--force]
  canary status NAME [--watch]
  canary traffic NAME WEIGHT [--canary V] [--if-match REVISION]
  canary promote NAME [--reason TEXT] [--canary V] [--if-match REVISION]
  canary rollback NAME [--reason TEXT] [--baseline | --to VERSION [--force]] [--canary V] [--if-match REVISION]
  canary approve NAME [--reason TEXT] [--canary V] [--if-match REVISION]
                                      carry out the step or promotion waiting for approval (policy.approvals)
  canary pause NAME [--canary V] [--if-match REVISION]     (measured, not acted on)
  canary resume NAME [--canary V] [--if-match REVISION]
  canary evaluate NAME
  canary health NAME
  canary agreement NAME [--limit 10]  shadow phase: agreement with the baseline, noise floor, disagreements
  canary metrics NAME [--limit N]
  canary history NAME [--limit N] [--version V]
  canary wait NAME [--timeout 30m] [--every 2s]
                                      follow a rollout (CI): exit 0 promoted, 1 rolled back, 3 timed out,
                                      4 control plane unreachable (retried through restarts), 5 unknown deployment
  canary completion bash|zsh          shell completion: source <(canary completion bash)
  canary load URL [--rps 50|max] [--duration 30s] [--connections 8] [--method POST] [--body FILE | --iris]
                                      traffic (POST of the Iris flowers unless --body FILE): a live line per
                                      variant, a summary with 4xx and 5xx apart (exit 1 if any request failed)

Durations: 5s, 2m, 250ms, 1h; a bare number is seconds.
Exit codes: 0 ok, 1 refused or failed (wait: rolled back), 2 usage, 3 timed out, 4 control plane
unreachable, 5 no such deployment.
Environment: see the README ("Configuration").`;

/** One example per command, shown by `canary <command> --help`. */
const EXAMPLES: Record<string, string> = {
  up: 'canary up',
  'control-plane': 'REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://... canary control-plane',
  proxy: 'REDIS_URL=redis://127.0.0.1:6379 canary proxy',
  'model-server': 'canary model-server --model v2 --port 8002 --error-rate 0.1',
  demo: 'canary demo --keep',
  deployments: 'canary deployments --json',
  deploy: 'canary deploy iris --version v1 --url http://127.0.0.1:8001',
  register: 'canary register iris --version v2 --url http://127.0.0.1:8002',
  versions: 'canary versions iris',
  start: 'canary start iris --version v2 --weight 20 --interval 30s',
  status: 'canary status iris --watch',
  traffic: 'canary traffic iris 50 --canary v2',
  promote: 'canary promote iris --canary v2 --reason "looks good"',
  rollback: 'canary rollback iris   # the running canary; --baseline or --to v1 for the baseline',
  approve: 'canary approve iris --canary v2 --reason "reviewed the evidence"',
  pause: 'canary pause iris',
  resume: 'canary resume iris',
  evaluate: 'canary evaluate iris',
  health: 'canary health iris',
  metrics: 'canary metrics iris --limit 10',
  agreement: 'canary start iris --version v4 --shadow && canary agreement iris',
  history: 'canary history iris --limit 20',
  wait: 'canary start iris --version v2 && canary wait iris --timeout 20m || echo "v2 did not make it"',
  load: 'canary load http://127.0.0.1:8080/iris/predict --iris --rps 50 --duration 1m',
  completion: 'source <(npx canary completion bash)',
};

/** Every command, from the usage text (one source), and the flags each one takes. */
function commandsAndFlags(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of USAGE.split('\n')) {
    const m = /^\s+canary ([a-z-]+)(.*)$/.exec(line);
    if (!m) continue;
    const flags = [...m[2].matchAll(/--[a-z-]+/g)].map((f) => f[0]);
    out.set(m[1], [
      ...new Set([
        ...(out.get(m[1]) ?? []),
        ...flags,
        '--help',
        ...(m[1] === 'model-server' || m[1] === 'proxy' || m[1] === 'demo' ? [] : ['--json']),
      ]),
    ]);
  }
  out.set('completion', ['bash', 'zsh']);
  return out;
}

/** `canary completion bash|zsh`: commands, then each command's flags, and deployment names from the API. */
function completionScript(shell: 'bash' | 'zsh'): string {
  const cmds = commandsAndFlags();
  const cases = [...cmds].map(([c, f]) => `    ${c}) opts="${f.join(' ')}" ;;`).join('\n');
  const bash = `# canary-mesh completion (bash): source <(canary completion bash)
_canary() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmd="\${COMP_WORDS[1]}" opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${[...cmds.keys()].join(' ')} --help --version" -- "$cur") ); return
  fi
  case "$cmd" in
${cases}
    *) opts="" ;;
  esac
  if [[ "$cur" == -* || "$cmd" == completion ]]; then COMPREPLY=( $(compgen -W "$opts" -- "$cur") ); return; fi
  # Deployment names, from the API (quietly nothing when it is not reachable).
  COMPREPLY=( $(compgen -W "$(canary deployments --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).deployments.map(d=>d.name).join(" "))}catch{}})')" -- "$cur") )
}
complete -F _canary canary`;
  if (shell === 'bash') return bash;
  return `# canary-mesh completion (zsh): source <(canary completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash}`;
}

/** A command's usage lines (with their continuation lines), from the usage text. */
function usageLines(command: string): string[] {
  const lines = USAGE.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!new RegExp(`^\\s+canary ${command.replace(/[-]/g, '\\-')}(\\s|$)`).test(lines[i])) continue;
    out.push(lines[i]);
    // Continuation lines are indented deeper and do not start a command.
    while (i + 1 < lines.length && /^\s{6,}\S/.test(lines[i + 1]) && !/^\s+canary /.test(lines[i + 1]))
      out.push(lines[++i]);
  }
  return out;
}

/** The flags a command's usage names, each with its default when the usage shows one (`[--weight 20]`). */
function flagsHelp(lines: string[]): string[] {
  const seen = new Map<string, string>();
  for (const l of lines)
    for (const m of l.matchAll(/(--[a-z-]+)(?: ([^\]\s|]+))?/g)) {
      const [, flag, value] = m;
      if (seen.has(flag)) continue;
      const placeholder = value === undefined || /^[A-Z][A-Z_]*$/.test(value) || value.startsWith('--');
      seen.set(
        flag,
        placeholder
          ? `${flag}${value && !value.startsWith('--') ? ` ${value}` : ''}`
          : `${`${flag} ${value}`.padEnd(28)}default ${value}`,
      );
    }
  return [...seen.values()];
}

/** `canary <command> --help` (or `canary help <command>`): its usage, flags with defaults, an example. */
function commandHelp(command: string): string | null {
  const lines = usageLines(command);
  if (lines.length === 0) return null;
  const client = !['up', 'control-plane', 'proxy', 'model-server', 'demo', 'completion'].includes(command);
  const flags = [
    ...flagsHelp(lines),
    ...(client ? [`${'--json'.padEnd(28)}JSON output (errors too), for scripts`] : []),
  ];
  return [
    'usage:',
    ...lines,
    ...(flags.length ? ['', 'flags:', ...flags.map((f) => `  ${f}`)] : []),
    '',
    'example:',
    `  ${EXAMPLES[command] ?? `canary ${command}`}`,
    '',
    'Durations: 5s, 2m, 250ms; a bare number is seconds. See `canary --help` for every command and the exit codes.',
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v' || command === 'version') {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`canary-mesh ${pkg.version} (node ${process.version})\n`);
    return;
  }
  // --help anywhere after a command prints that command's help and starts nothing.
  if (command && (rest.includes('--help') || rest.includes('-h'))) {
    const help = commandHelp(command);
    if (!help) throw new UsageError(`unknown command ${JSON.stringify(command)}${suggestCommand(command)}\n\n${USAGE}`);
    process.stdout.write(`${help}\n`);
    return;
  }
  switch (command) {
    case 'proxy': {
      const { values } = parseArgs({ args: rest, options: { workers: { type: 'string' } } });
      const workers = values.workers === undefined ? 1 : Number(values.workers);
      if (!Number.isInteger(workers) || workers < 1)
        throw new ConfigError(`--workers: expected a positive integer, got ${values.workers}`);
      const { runProxyCommand } = await import('../proxy/main.js');
      return runProxyCommand({ workers });
    }
    case 'model-server': {
      const { values } = parseArgs({
        args: rest,
        options: {
          model: { type: 'string' },
          version: { type: 'string' },
          port: { type: 'string' },
          host: { type: 'string' },
          'error-rate': { type: 'string' },
          latency: { type: 'string' },
          jitter: { type: 'string' },
          'hang-rate': { type: 'string' },
          ttft: { type: 'string' },
          tpot: { type: 'string' },
          tokens: { type: 'string' },
          'length-scale': { type: 'string' },
          'error-event-rate': { type: 'string' },
          'cut-rate': { type: 'string' },
        },
      });
      const { runModelServerCommand } = await import('../model-servers/main.js');
      return runModelServerCommand({
        model: values.model,
        version: values.version,
        port: values.port,
        host: values.host,
        errorRate: values['error-rate'],
        latency: values.latency,
        jitter: values.jitter,
        hangRate: values['hang-rate'],
        ttft: values.ttft,
        tpot: values.tpot,
        tokens: values.tokens,
        lengthScale: values['length-scale'],
        errorEventRate: values['error-event-rate'],
        cutRate: values['cut-rate'],
      });
    }
    case 'up': {
      const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' } } });
      const { runUpCommand } = await import('../control-plane/main.js');
      return runUpCommand({ json: values.json === true });
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
    case 'completion': {
      const shell = rest[0];
      if (shell !== 'bash' && shell !== 'zsh')
        throw new UsageError(
          'completion needs a shell: canary completion bash  (or zsh); e.g. source <(canary completion bash)',
        );
      process.stdout.write(`${completionScript(shell)}\n`);
      return;
    }
    case 'help':
      if (rest[0]) {
        const help = commandHelp(rest[0]);
        if (!help) throw new UsageError(`unknown command ${JSON.stringify(rest[0])}${suggestCommand(rest[0])}`);
        process.stdout.write(`${help}\n`);
        return;
      }
      process.stdout.write(`${USAGE}\n`);
      return;
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      if (await runClientCommand(command, rest)) return;
      throw new UsageError(`unknown command ${JSON.stringify(command)}${suggestCommand(command)}\n\n${USAGE}`);
  }
}

// `canary status --watch | head`: the reader went away; that is the end, not a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/** "; did you mean deploy?" for a mistyped command. */
function suggestCommand(typed: string): string {
  const near = didYouMean(typed, [...commandsAndFlags().keys()]);
  return near ? `; did you mean ${near}?` : '';
}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  const command = process.argv[2];
  // The server commands parse their own flags: their errors get the same words as the client's.
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
    err = new UsageError(
      optionError(
        err,
        (commandsAndFlags().get(command) ?? []).map((f) => f.replace(/^--/, '')),
      ),
    );
  const usage = err instanceof UsageError;
  // A usage error in a known command ends with that command's usage.
  const lines = usage && !err.message.includes('\n') ? usageLines(command ?? '') : [];
  if (lines.length) err.message += `\n\nusage:\n${lines.join('\n')}`;
  if (process.argv.includes('--json')) {
    // Scripts asked for JSON: errors come as JSON on stdout too, with the same exit codes.
    const code = err instanceof ApiError ? err.code : usage ? 'USAGE' : (err.code ?? 'ERROR');
    process.stdout.write(`${JSON.stringify({ error: { code, message: err.message.split('\n')[0] } })}\n`);
  } else {
    const detail = err instanceof ApiError ? ` [${err.code}]` : '';
    process.stderr.write(`canary: ${err.message}${detail}\n`);
  }
  process.exit(exitCodeOf(err, usage));
});

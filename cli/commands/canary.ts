import { setTimeout as sleep } from 'node:timers/promises';
import {
  canaryOf,
  client,
  enc,
  ifMatchOf,
  jsonOption,
  num,
  out,
  PRECONDITION_OPTIONS,
  parse,
  print,
  UsageError,
  warnIfDown,
} from '../args.js';
import { ApiError } from '../client.js';
import { cliDuration, EXIT } from '../exit-codes.js';
import { color, msf, pct, table, time, verdictColor } from '../format.js';
import {
  agreementText,
  awaitingText,
  businessLine,
  grpcTable,
  rulesTable,
  showDeployment,
  statsRows,
  streamsTable,
} from '../render.js';
/** A deployment's canary: `start|status|traffic|promote|rollback|approve|pause|resume|evaluate|health|agreement|metrics|wait|load`. */
export async function canaryCommands(command: string, rest: string[]): Promise<boolean> {
  const api = client();
  switch (command) {
    case 'start': {
      const { values, args } = parse(
        rest,
        {
          version: { type: 'string' },
          url: { type: 'string' },
          weight: { type: 'string' },
          steps: { type: 'string' },
          interval: { type: 'string' },
          policy: { type: 'string' },
          force: { type: 'boolean' },
          shadow: { type: 'boolean' },
        },
        ['name'],
      );
      if (!values.version) throw new UsageError('start needs --version (and --url if the version is not registered)');
      const startWeight = num(values.weight, 'weight');
      if (startWeight !== undefined && !(startWeight > 0 && startWeight <= 100))
        throw new UsageError(
          `--weight: a canary starts at more than 0% and at most 100% (at 0% it gets no traffic and can never be judged), got ${values.weight}`,
        );
      const policy = { ...(jsonOption(values.policy, 'policy') as object | undefined) } as Record<string, unknown>;
      if (typeof values.steps === 'string')
        policy.steps = values.steps.split(',').map((s) => {
          const n = Number(s);
          if (!Number.isFinite(n)) throw new UsageError(`--steps: ${s} is not a number`);
          return n;
        });
      if (typeof values.interval === 'string') policy.interval = values.interval;
      if (values.shadow) {
        if (values.weight !== undefined)
          throw new UsageError(
            '--shadow: a shadowing canary starts at 0% and goes live through the shadow gate; leave out --weight',
          );
        policy.shadow ??= true;
      }
      const d = await api.call('POST', `/v1/deployments/${enc(args[0])}/canary`, {
        version: values.version,
        ...(values.url ? { url: values.url } : {}),
        ...(values.weight !== undefined ? { weight: num(values.weight, 'weight') } : {}),
        ...(Object.keys(policy).length ? { policy } : {}),
        ...(values.force ? { force: true } : {}),
      });
      if (typeof values.url === 'string' && !values.json) await warnIfDown(values.url);
      print(
        values.json,
        d,
        () =>
          `canary ${d.canary.version} started ${d.canary.phase === 'shadow' ? 'in shadow (users are answered by the baseline only; see canary agreement)' : `at ${d.canary.weight}%`}\n${showDeployment(d)}`,
      );
      return true;
    }
    case 'status': {
      const { values, args } = parse(rest, { watch: { type: 'boolean', short: 'w' }, every: { type: 'string' } }, [
        'name',
      ]);
      const every = cliDuration(values.every, 'every', '2s');
      for (;;) {
        let d: any, a: any;
        try {
          d = await api.call('GET', `/v1/deployments/${enc(args[0])}`);
          a = d.canary ? await api.call('GET', `/v1/deployments/${enc(args[0])}/analysis?limit=1`) : null;
        } catch (err) {
          // Watching keeps going through a control-plane restart: say so, and try again.
          if (!values.watch || !(err instanceof ApiError) || err.code !== 'UNREACHABLE') throw err;
          if (values.json) out(JSON.stringify({ reconnecting: true, error: { code: err.code, message: err.message } }));
          else out(`${time(new Date().toISOString())}  reconnecting: ${err.message}`);
          await sleep(every);
          continue;
        }
        const data = { deployment: d, analysis: a?.latest ?? null };
        const human = () => {
          let s = showDeployment(d);
          if (a?.latest) s += `\n  why       ${a.latest.reasons.join('\n            ')}`;
          const streams = a?.latest ? streamsTable(a.latest) + grpcTable(a.latest) : '';
          if (streams) s += `\n${streams.trimEnd()}`;
          return s;
        };
        if (!values.watch) {
          print(values.json, data, human);
          return true;
        }
        if (values.json) out(JSON.stringify(data));
        else out(`${process.stdout.isTTY ? '\x1b[2J\x1b[H' : ''}${time(new Date().toISOString())}\n${human()}\n`);
        if (!d.canary) {
          if (!values.json) out('no canary running: done watching');
          return true;
        }
        await sleep(every);
      }
    }
    case 'traffic': {
      const { values, args } = parse(rest, PRECONDITION_OPTIONS, ['name', 'weight']);
      const weight = Number(args[1]);
      if (!Number.isFinite(weight) || weight < 0 || weight > 100)
        throw new UsageError(`weight must be a number from 0 to 100, got ${JSON.stringify(args[1])}`);
      const d = await api.call(
        'PUT',
        `/v1/deployments/${enc(args[0])}/traffic`,
        { weight, ...canaryOf(values) },
        ifMatchOf(values),
      );
      print(values.json, d, () => `canary ${d.canary.version} now at ${d.canary.weight}%\n${showDeployment(d)}`);
      return true;
    }
    case 'promote':
    case 'rollback': {
      const { values, args } = parse(
        rest,
        {
          reason: { type: 'string' },
          to: { type: 'string' },
          baseline: { type: 'boolean' },
          force: { type: 'boolean' },
          ...PRECONDITION_OPTIONS,
        },
        ['name'],
      );
      if (command === 'promote' && (values.to || values.baseline))
        throw new UsageError('--to and --baseline are only for rollback');
      if (values.to && values.canary)
        throw new UsageError('--to rolls back the baseline; --canary names a canary to roll back: use one');
      // Without --baseline or --to, rollback means the running canary and nothing else.
      const body = {
        ...(values.reason ? { reason: values.reason } : {}),
        ...(values.to ? { toVersion: values.to } : {}),
        ...(values.baseline ? { target: 'baseline' } : {}),
        ...(values.force ? { force: true } : {}),
        ...canaryOf(values),
      };
      const d = await api.call('POST', `/v1/deployments/${enc(args[0])}/${command}`, body, ifMatchOf(values));
      print(
        values.json,
        d,
        () =>
          `${command === 'promote' ? 'promoted' : 'rolled back'}: baseline is ${d.baseline.version}\n${(d.warnings ?? []).map((w: string) => `${color.yellow('warning:')} ${w}\n`).join('')}${showDeployment(d)}`,
      );
      return true;
    }
    case 'approve': {
      const { values, args } = parse(rest, { reason: { type: 'string' }, ...PRECONDITION_OPTIONS }, ['name']);
      const before = await api.call('GET', `/v1/deployments/${enc(args[0])}`);
      const waiting = before.canary?.awaitingApproval;
      const body = { ...(values.reason ? { reason: values.reason } : {}), ...canaryOf(values) };
      const d = await api.call('POST', `/v1/deployments/${enc(args[0])}/approve`, body, ifMatchOf(values));
      print(values.json, d, () => {
        const done = !waiting
          ? 'approved'
          : waiting === 'promote'
            ? `approved: promoted, baseline is ${d.baseline.version}`
            : `approved: canary ${d.canary?.version} now at ${d.canary?.weight}%`;
        return `${done}\n${showDeployment(d)}`;
      });
      return true;
    }
    case 'pause':
    case 'resume': {
      const { values, args } = parse(rest, PRECONDITION_OPTIONS, ['name']);
      const d = await api.call(
        'POST',
        `/v1/deployments/${enc(args[0])}/${command}`,
        canaryOf(values),
        ifMatchOf(values),
      );
      print(values.json, d, () => `${args[0]} is ${d.status}`);
      return true;
    }
    case 'evaluate': {
      const { values, args } = parse(rest, {}, ['name']);
      const r = await api.call('POST', `/v1/deployments/${enc(args[0])}/evaluate`);
      print(
        values.json,
        r,
        () =>
          `${verdictColor(r.verdict)}  ${r.actions.map((a: any) => a.type).join(', ') || 'hold'}\n${table(['ROLE', 'VERSION', 'REQUESTS', 'ERRORS', 'P50', 'P95', 'P99'], statsRows(r))}\n${rulesTable(r)}`,
      );
      return true;
    }
    case 'health': {
      const { values, args } = parse(rest, {}, ['name']);
      const a = await api.call('GET', `/v1/deployments/${enc(args[0])}/analysis?limit=1`);
      print(values.json, a, () => {
        if (!a.latest)
          return a.canary ? `canary ${a.canary.version}: no analysis yet` : `no canary has run for ${args[0]}`;
        const waiting = a.canary.awaitingApproval ? `${awaitingText(a.canary, args[0])}\n` : '';
        return (
          `canary ${a.canary.version} (${a.canary.outcome}) — ${verdictColor(a.latest.verdict)} at ${time(a.latest.at)}, weight ${a.latest.weight}%\n${waiting}` +
          `${table(['ROLE', 'VERSION', 'REQUESTS', 'ERROR RATE', 'P50', 'P95', 'P99'], statsRows(a.latest))}\n${streamsTable(a.latest)}${grpcTable(a.latest)}${businessLine(a.latest)}` +
          (a.latest.rules?.length ? rulesTable(a.latest) : `  ${a.latest.reasons.join('\n  ')}`)
        );
      });
      return true;
    }
    case 'agreement': {
      const { values, args } = parse(rest, { limit: { type: 'string' } }, ['name']);
      const a = await api.call('GET', `/v1/deployments/${enc(args[0])}/agreement`);
      print(values.json, a, () => agreementText(a, args[0], num(values.limit, 'limit') ?? 10));
      return true;
    }
    case 'metrics': {
      const { values, args } = parse(rest, { limit: { type: 'string' } }, ['name']);
      const a = await api.call(
        'GET',
        `/v1/deployments/${enc(args[0])}/analysis?limit=${num(values.limit, 'limit') ?? 20}`,
      );
      print(values.json, a, () =>
        a.history.length === 0
          ? 'no analyses yet'
          : table(
              [
                'TIME',
                'WEIGHT',
                'VERDICT',
                'BASE REQ',
                'BASE ERR',
                'BASE P95',
                'CAN REQ',
                'CAN ERR',
                'CAN P95',
                'CAN P99',
                'ACTION',
              ],
              a.history.map((h: any) => [
                time(h.at),
                `${h.weight}%`,
                verdictColor(h.verdict),
                h.baseline?.requests,
                pct(h.baseline?.errorRate),
                msf(h.baseline?.p95),
                h.canary?.requests,
                pct(h.canary?.errorRate),
                msf(h.canary?.p95),
                msf(h.canary?.p99),
                h.action,
              ]),
            ),
      );
      return true;
    }
    case 'wait': {
      // For CI pipelines: follow the rollout until it ends, through control-plane restarts.
      // Exit codes (cli/exit-codes.ts): 0 promoted, 1 rolled back, 3 timed out, 4 unreachable, 5 unknown deployment.
      const { values, args } = parse(rest, { timeout: { type: 'string' }, every: { type: 'string' } }, ['name']);
      const timeoutMs = cliDuration(values.timeout, 'timeout', '30m');
      const every = cliDuration(values.every, 'every', '2s');
      const name = enc(args[0]);
      const deadline = Date.now() + timeoutMs;
      let down: string | null = null;
      /** One API read, retried while the control plane is unreachable or restarting (until the deadline). */
      const read = async (path: string): Promise<any> => {
        for (;;) {
          try {
            const r = await api.call('GET', path);
            if (down) process.stderr.write('canary: wait: the control plane answers again\n');
            down = null;
            return r;
          } catch (err) {
            const restarting = err instanceof ApiError && (err.code === 'UNREACHABLE' || err.status >= 500);
            if (!restarting) throw err;
            if (!down) process.stderr.write(`canary: wait: ${err.message}; retrying until the timeout\n`);
            down = err.message;
            if (Date.now() + every > deadline) return null;
            await sleep(every);
          }
        }
      };
      const first = await read(`/v1/deployments/${name}`);
      const watched: string | undefined = first?.canary?.version;
      let last = '';
      for (;;) {
        const a = first && (await read(`/v1/deployments/${name}/analysis?limit=1`));
        if (a === null) {
          process.stderr.write(
            `canary: wait: the control plane did not answer for the rest of the timeout (${down})\n`,
          );
          process.exitCode = EXIT.unreachable;
          return true;
        }
        const c = a.canary;
        if (!c) {
          process.stderr.write(`canary: wait: no canary has run for ${args[0]}\n`);
          process.exitCode = EXIT.notFound;
          return true;
        }
        if (watched === undefined || c.version === watched) {
          if (c.outcome !== 'running') {
            const result =
              c.outcome === 'promoted'
                ? `promoted: ${c.version} is the baseline`
                : `rolled back: ${c.version}${a.latest ? ` — ${a.latest.reasons[0]}` : ''}`;
            if (values.json) out(JSON.stringify({ outcome: c.outcome, canary: c, latest: a.latest }));
            else out(`${time(new Date().toISOString())}  ${result}`);
            process.exitCode = c.outcome === 'promoted' ? EXIT.ok : EXIT.failed;
            return true;
          }
          const line = `${c.version} at ${c.weight}%  ${a.latest ? `${a.latest.verdict}: ${a.latest.reasons[0] ?? ''}` : 'no analysis yet'}`;
          if (line !== last) {
            if (values.json) out(JSON.stringify({ outcome: 'running', canary: c, latest: a.latest }));
            else out(`${time(new Date().toISOString())}  ${line}`);
            last = line;
          }
        }
        if (Date.now() > deadline) {
          process.stderr.write(`canary: wait: ${args[0]} still rolling out after ${values.timeout ?? '30m'}\n`);
          process.exitCode = EXIT.timedOut;
          return true;
        }
        await sleep(every);
      }
    }
    case 'load': {
      const { values, args } = parse(
        rest,
        {
          rps: { type: 'string' },
          duration: { type: 'string' },
          connections: { type: 'string' },
          body: { type: 'string' },
          iris: { type: 'boolean' },
          method: { type: 'string' },
        },
        ['url'],
      );
      const durationMs = cliDuration(values.duration, 'duration', '30s');
      try {
        new URL(args[0]);
      } catch {
        throw new UsageError(`not a URL: ${JSON.stringify(args[0])} (for example http://127.0.0.1:8080/iris/predict)`);
      }
      if (values.body && values.iris) throw new UsageError('--body and --iris: use one');
      const method = typeof values.method === 'string' ? values.method.toUpperCase() : 'POST';
      if (!/^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$/.test(method))
        throw new UsageError(
          `--method: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS, got ${JSON.stringify(values.method)}`,
        );
      const bodyless = method === 'GET' || method === 'HEAD';
      if (bodyless && (values.body || values.iris))
        throw new UsageError(`--method ${method} sends no body: drop --body/--iris`);
      // 50 requests a second unless told otherwise ("--rps max": as fast as it goes).
      const rps = values.rps === 'max' ? null : (num(values.rps, 'rps') ?? 50);
      if (rps !== null && !(rps > 0)) throw new UsageError('--rps: more than 0, or max');
      const { runLoad } = await import('../load.js');
      const tty = process.stderr.isTTY && !values.json;
      const summary = await runLoad({
        url: args[0],
        rps,
        durationS: Math.max(1, Math.round(durationMs / 1000)),
        connections: num(values.connections, 'connections') ?? 8,
        method,
        // A JSON body by default: the Iris flowers in turn, unless a file is given or the method takes none.
        body: typeof values.body === 'string' ? { file: values.body } : bodyless ? null : { iris: true },
        json: values.json === true,
        out,
        progress: (l) => {
          if (!values.json) process.stderr.write(tty ? `\r${l}` : `${l}\n`);
        },
      });
      if (tty) process.stderr.write('\n');
      if (summary.errors > 0) process.exitCode = 1;
      return true;
    }
    default:
      return false;
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseDuration } from '../common/duration.js';
import { ApiClient, ApiError } from './client.js';
import { color, msf, pct, splitBar, table, time, verdictColor } from './format.js';

export class UsageError extends Error {}

type Out = (s: string) => void;
const out: Out = (s) => process.stdout.write(`${s}\n`);

/** `canary agreement`: the shadow phase's agreement, its noise floor, the gate, and how the models differ. */
function agreementText(a: any, name: string, limit: number): string {
  if (!a.canary) return `no canary has run for ${name}`;
  if (!a.shadow) return `canary ${a.canary.version} had no shadow phase (start one with --shadow or policy.shadow)`;
  const c = a.counts,
    n = a.noise,
    r = a.rule;
  const fields = a.shadow.compare.fields.length ? a.shadow.compare.fields.join(', ') : 'the whole body';
  const lines = [
    `canary ${a.canary.version} vs baseline ${a.canary.baselineVersion} — ${a.canary.phase === 'shadow' ? 'in shadow' : a.canary.phase === 'live' ? 'live (shadow passed)' : a.canary.outcome}; comparing ${fields}`,
    `agreement   ${c.compared ? `${pct(c.agreement)} (${c.agreed}/${c.compared})` : 'nothing compared yet'}${r?.canary?.low != null ? `, lower bound ${pct(r.canary.low)}` : ''}   gate ≥ ${pct(a.shadow.agreementMin)} over ${a.shadow.minRequests} answers${a.shadow.relativeToNoise ? ', relative to the noise floor' : ''}`,
    `noise floor ${n.compared ? `the baseline agrees with itself ${pct(n.agreement)} (${n.agreed}/${n.compared})` : 'not measured yet'}`,
    `shadow      errors ${c.errors}, timeouts ${c.timeouts}, dropped ${c.dropped}`,
    r ? `rule        ${r.status}: ${r.summary}` : 'rule        no analysis yet',
  ];
  if (a.examples.length) {
    const shown = a.examples.slice(0, limit);
    lines.push(
      '',
      `disagreements (newest ${shown.length} of the ${a.examples.length} kept; --limit N for more):`,
      table(
        ['TIME', 'REQUEST ID', 'INPUT SHA-256', 'BASELINE', 'CANARY'],
        shown.map((e: any) => [
          time(new Date(e.at).toISOString()),
          e.requestId,
          e.inputSha256.slice(0, 12),
          e.baseline,
          e.canary,
        ]),
      ),
    );
  }
  return lines.join('\n');
}

function client(): ApiClient {
  return new ApiClient(process.env.CANARY_API_URL ?? 'http://127.0.0.1:8090', process.env.CANARY_API_TOKEN || null);
}

function parse(
  rest: string[],
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
  positionals: string[],
) {
  const { values, positionals: pos } = parseArgs({
    args: rest,
    options: { json: { type: 'boolean' }, ...options },
    allowPositionals: true,
    strict: true,
  });
  if (pos.length < positionals.length)
    throw new UsageError(
      `missing ${positionals
        .slice(pos.length)
        .map((p) => `<${p}>`)
        .join(' ')}`,
    );
  if (pos.length > positionals.length)
    throw new UsageError(`unexpected argument ${JSON.stringify(pos[positionals.length])}`);
  return { values: values as Record<string, string | boolean | undefined>, args: pos };
}

function jsonOption(v: string | boolean | undefined, name: string): unknown {
  if (typeof v !== 'string') return undefined;
  try {
    return JSON.parse(v);
  } catch {
    throw new UsageError(`--${name}: not valid JSON: ${v}`);
  }
}

function num(v: string | boolean | undefined, name: string): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

const enc = encodeURIComponent;

function showDeployment(d: any): string {
  const lines = [
    `${color.bold(d.name)}  ${d.status}  ${color.dim(`revision ${d.revision}`)}`,
    `  baseline  ${d.baseline.version}  ${color.dim(d.baseline.url)}`,
  ];
  if (d.canary) {
    const c = d.canary;
    lines.push(`  canary    ${c.version}  ${color.dim(c.url)}`);
    if (c.phase === 'shadow') {
      lines.push(
        `  split     ${splitBar(0)}  █ baseline 100% — the canary is in shadow: ${d.policy?.shadow?.percent ?? 100}% of requests are also sent to it and compared, users get only the baseline's answers (canary agreement ${d.name})`,
      );
      lines.push(
        `  steps     ${color.bold('[shadow]')} → ${c.steps.join(' → ')}  next: ${c.nextStep} once the shadow gate passes`,
      );
    } else {
      lines.push(`  split     ${splitBar(c.weight)}  █ baseline ${100 - c.weight}% / ░ canary ${c.weight}%`);
      lines.push(
        `  steps     ${c.steps.map((s: number) => (s === c.weight ? color.bold(`[${s}]`) : String(s))).join(' → ')}  next: ${c.nextStep ?? 'promote'}`,
      );
    }
    lines.push(
      `  verdict   ${verdictColor(c.lastVerdict)}  ${color.dim(c.lastAnalysisAt ? `at ${time(c.lastAnalysisAt)}` : 'no analysis yet')}`,
    );
  } else {
    lines.push('  canary    none');
  }
  return lines.join('\n');
}

/** The business metric per variant and the change with its interval, when outcomes arrive. */
export function businessLine(a: any): string {
  const b = a.baseline?.business,
    c = a.canary?.business,
    ch = a.canary?.businessChange;
  if (!b || !c || (b.n === 0 && c.n === 0)) return '';
  const change = ch ? `, change ${pct(ch.value)} [${pct(ch.low)}, ${pct(ch.high)}]` : '';
  return `  business: baseline ${b.mean.toFixed(4)} (n=${b.n}), canary ${c.mean.toFixed(4)} (n=${c.n})${change}, p=${a.canary.businessPValue?.toFixed(4) ?? '-'}\n`;
}

const STATUS_WORD: Record<string, string> = { fail: 'FAIL', warn: 'WARN', pass: 'ok', pending: 'open', skipped: 'n/a' };
const bound = (lo: number | null, hi: number | null) =>
  lo === null && hi === null ? '-' : `${lo === null ? '' : pct(lo)}–${hi === null ? '' : pct(hi)}`;

/** Each rule's evidence: status, estimate per variant with bounds, n, always-valid p-value, and in words. */
export function rulesTable(a: any): string {
  if (!a?.rules?.length) return '';
  const rows = a.rules.map((r: any) => [
    r.rule,
    STATUS_WORD[r.status] ?? r.status,
    r.canary ? `${pct(r.canary.estimate)} [${bound(r.canary.low, r.canary.high)}] n=${r.canary.n}` : '-',
    r.baseline ? `${pct(r.baseline.estimate)} n=${r.baseline.n}` : '-',
    r.pValue < 0.001 ? r.pValue.toExponential(1) : r.pValue.toFixed(3),
    r.alpha.toExponential(1),
  ]);
  const words = a.rules.map((r: any) => `  ${r.rule}: ${r.summary}`).join('\n');
  const needs =
    a.needs?.requests != null
      ? `\n  a decision needs ≈ ${a.needs.requests} more canary requests${a.needs.seconds != null ? ` (≈ ${a.needs.seconds < 90 ? `${Math.max(1, Math.round(a.needs.seconds))} s` : `${Math.round(a.needs.seconds / 60)} min`} at the current rate)` : ''}`
      : '';
  return `${table(['RULE', 'STATUS', 'CANARY [BOUNDS]', 'BASELINE', 'P', 'ROLLS BACK AT P ≤'], rows)}\n${words}${needs}${a.needs?.advice ? `\n  advice: ${a.needs.advice}` : ''}`;
}

function statsRows(a: any) {
  return [
    ['baseline', a.baseline],
    ['canary', a.canary],
  ].map(([role, s]: any) => [role, s?.version, s?.requests, pct(s?.errorRate), msf(s?.p50), msf(s?.p95), msf(s?.p99)]);
}

/**
 * What a change acts on: --canary VERSION (the body's `canary`: 409 if another one runs) and
 * --if-match REVISION (the revision `canary status` showed: 412 if it changed since).
 */
const PRECONDITION_OPTIONS: Record<string, { type: 'string' }> = {
  canary: { type: 'string' },
  'if-match': { type: 'string' },
};
const canaryOf = (v: { canary?: string | boolean }) => (typeof v.canary === 'string' ? { canary: v.canary } : {});
function ifMatchOf(v: { 'if-match'?: string | boolean }): Record<string, string> {
  const r = v['if-match'];
  if (typeof r !== 'string') return {};
  if (!/^(W\/)?"?\d+"?$/.test(r))
    throw new UsageError(`--if-match: expected a revision number as shown by canary status, got ${JSON.stringify(r)}`);
  return { 'if-match': /^\d+$/.test(r) ? `"${r}"` : r };
}

/** Every client command of DESIGN.md §3. Returns true if it handled `command`. */
export async function runClientCommand(command: string, rest: string[]): Promise<boolean> {
  const api = client();
  const print = (json: boolean | string | undefined, data: unknown, human: () => string) =>
    out(json ? JSON.stringify(data, null, 2) : human());
  switch (command) {
    case 'deployments': {
      const { values } = parse(rest, {}, []);
      const r = await api.call('GET', '/v1/deployments');
      print(values.json, r, () =>
        r.deployments.length === 0
          ? 'no deployments yet: canary deploy <name> --version v1 --url http://model:8000'
          : table(
              ['NAME', 'STATUS', 'BASELINE', 'CANARY', 'WEIGHT', 'VERDICT'],
              r.deployments.map((d: any) => [
                d.name,
                d.status,
                d.baseline.version,
                d.canary?.version,
                d.canary ? `${d.canary.weight}%` : null,
                verdictColor(d.canary?.lastVerdict),
              ]),
            ),
      );
      return true;
    }
    case 'deploy': {
      const { values, args } = parse(
        rest,
        {
          version: { type: 'string' },
          url: { type: 'string' },
          metadata: { type: 'string' },
          policy: { type: 'string' },
        },
        ['name'],
      );
      if (!values.version || !values.url)
        throw new UsageError('deploy needs --version and --url of the baseline model server');
      const d = await api.call('POST', '/v1/deployments', {
        name: args[0],
        baseline: {
          version: values.version,
          url: values.url,
          ...(values.metadata ? { metadata: jsonOption(values.metadata, 'metadata') } : {}),
        },
        ...(values.policy ? { policy: jsonOption(values.policy, 'policy') } : {}),
      });
      print(values.json, d, () => `created ${d.name} with baseline ${d.baseline.version}\n${showDeployment(d)}`);
      return true;
    }
    case 'register': {
      const { values, args } = parse(
        rest,
        { version: { type: 'string' }, url: { type: 'string' }, metadata: { type: 'string' } },
        ['name'],
      );
      if (!values.version || !values.url) throw new UsageError('register needs --version and --url');
      const v = await api.call('POST', `/v1/deployments/${enc(args[0])}/versions`, {
        version: values.version,
        url: values.url,
        ...(values.metadata ? { metadata: jsonOption(values.metadata, 'metadata') } : {}),
      });
      print(values.json, v, () => `registered ${args[0]} ${v.version} at ${v.url} (${v.state})`);
      return true;
    }
    case 'versions': {
      const { values, args } = parse(rest, {}, ['name']);
      const r = await api.call('GET', `/v1/deployments/${enc(args[0])}/versions`);
      print(values.json, r, () =>
        table(
          ['VERSION', 'STATE', 'HEALTHY', 'URL', 'REGISTERED', 'ACCURACY'],
          r.versions.map((v: any) => [
            v.version,
            v.state,
            v.healthy === null ? null : v.healthy ? color.green('yes') : color.red('no'),
            v.url,
            time(v.registeredAt),
            v.metadata?.metrics?.accuracy ?? null,
          ]),
        ),
      );
      return true;
    }
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
      const every = num(values.every, 'every') ?? 2;
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
          await sleep(every * 1000);
          continue;
        }
        const data = { deployment: d, analysis: a?.latest ?? null };
        const human = () => {
          let s = showDeployment(d);
          if (a?.latest) s += `\n  why       ${a.latest.reasons.join('\n            ')}`;
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
        await sleep(every * 1000);
      }
    }
    case 'traffic': {
      const { values, args } = parse(rest, PRECONDITION_OPTIONS, ['name', 'weight']);
      const weight = Number(args[1]);
      if (!Number.isFinite(weight))
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
          `${command === 'promote' ? 'promoted' : 'rolled back'}: baseline is ${d.baseline.version}\n${showDeployment(d)}`,
      );
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
        return (
          `canary ${a.canary.version} (${a.canary.outcome}) — ${verdictColor(a.latest.verdict)} at ${time(a.latest.at)}, weight ${a.latest.weight}%\n` +
          `${table(['ROLE', 'VERSION', 'REQUESTS', 'ERROR RATE', 'P50', 'P95', 'P99'], statsRows(a.latest))}\n${businessLine(a.latest)}` +
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
      // For CI pipelines: follow the rollout until it ends. Exit 0 promoted, 1 rolled back, 2 timeout.
      const { values, args } = parse(rest, { timeout: { type: 'string' }, every: { type: 'string' } }, ['name']);
      let timeoutMs: number;
      try {
        timeoutMs = parseDuration(values.timeout ?? '30m', '--timeout');
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const every = (num(values.every, 'every') ?? 2) * 1000;
      const name = enc(args[0]);
      const deadline = Date.now() + timeoutMs;
      const first = await api.call('GET', `/v1/deployments/${name}`);
      const watched: string | undefined = first.canary?.version;
      let last = '';
      for (;;) {
        const a = await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`);
        const c = a.canary;
        if (!c) throw new UsageError(`no canary has run for ${args[0]}`);
        if (watched === undefined || c.version === watched) {
          if (c.outcome !== 'running') {
            const result =
              c.outcome === 'promoted'
                ? `promoted: ${c.version} is the baseline`
                : `rolled back: ${c.version}${a.latest ? ` — ${a.latest.reasons[0]}` : ''}`;
            if (values.json) out(JSON.stringify({ outcome: c.outcome, canary: c, latest: a.latest }));
            else out(`${time(new Date().toISOString())}  ${result}`);
            process.exitCode = c.outcome === 'promoted' ? 0 : 1;
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
          process.exitCode = 2;
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
        },
        ['url'],
      );
      let durationMs: number;
      try {
        durationMs = parseDuration(values.duration ?? '30s', '--duration');
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      try {
        new URL(args[0]);
      } catch {
        throw new UsageError(`not a URL: ${JSON.stringify(args[0])} (for example http://127.0.0.1:8080/iris/predict)`);
      }
      if (values.body && values.iris) throw new UsageError('--body and --iris: use one');
      const rps = num(values.rps, 'rps') ?? null;
      if (rps !== null && !(rps > 0)) throw new UsageError('--rps: more than 0');
      const { runLoad } = await import('./load.js');
      const tty = process.stderr.isTTY && !values.json;
      const summary = await runLoad({
        url: args[0],
        rps,
        durationS: Math.max(1, Math.round(durationMs / 1000)),
        connections: num(values.connections, 'connections') ?? 8,
        body: values.iris ? { iris: true } : typeof values.body === 'string' ? { file: values.body } : null,
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
    case 'history': {
      const { values, args } = parse(rest, { limit: { type: 'string' } }, ['name']);
      const r = await api.call(
        'GET',
        `/v1/deployments/${enc(args[0])}/events?limit=${num(values.limit, 'limit') ?? 50}`,
      );
      print(values.json, r, () =>
        table(
          ['TIME', 'EVENT', 'ACTOR', 'REASON'],
          r.events.map((e: any) => [
            time(e.at),
            e.type,
            e.actor,
            e.reason ? (e.reason.length > 100 ? `${e.reason.slice(0, 97)}...` : e.reason) : null,
          ]),
        ),
      );
      return true;
    }
    default:
      return false;
  }
}

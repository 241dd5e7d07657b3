import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from './client.js';
import { color, msf, pct, splitBar, table, time, verdictColor } from './format.js';

export class UsageError extends Error {}

type Out = (s: string) => void;
const out: Out = (s) => process.stdout.write(`${s}\n`);

function client(): ApiClient {
  return new ApiClient(process.env.CANARY_API_URL ?? 'http://127.0.0.1:8090', process.env.CANARY_API_TOKEN || null);
}

function parse(rest: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>, positionals: string[]) {
  const { values, positionals: pos } = parseArgs({ args: rest, options: { json: { type: 'boolean' }, ...options }, allowPositionals: true, strict: true });
  if (pos.length < positionals.length) throw new UsageError(`missing ${positionals.slice(pos.length).map((p) => `<${p}>`).join(' ')}`);
  if (pos.length > positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(pos[positionals.length])}`);
  return { values: values as Record<string, string | boolean | undefined>, args: pos };
}

function jsonOption(v: string | boolean | undefined, name: string): unknown {
  if (typeof v !== 'string') return undefined;
  try { return JSON.parse(v); } catch { throw new UsageError(`--${name}: not valid JSON: ${v}`); }
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
    `${color.bold(d.name)}  ${d.status}`,
    `  baseline  ${d.baseline.version}  ${color.dim(d.baseline.url)}`,
  ];
  if (d.canary) {
    const c = d.canary;
    lines.push(`  canary    ${c.version}  ${color.dim(c.url)}`);
    lines.push(`  split     ${splitBar(c.weight)}  baseline ${100 - c.weight}% / canary ${c.weight}%`);
    lines.push(`  steps     ${c.steps.map((s: number) => (s === c.weight ? color.bold(`[${s}]`) : String(s))).join(' → ')}  next: ${c.nextStep ?? 'promote'}`);
    lines.push(`  verdict   ${verdictColor(c.lastVerdict)}  ${color.dim(c.lastAnalysisAt ? `at ${time(c.lastAnalysisAt)}` : 'no analysis yet')}`);
  } else {
    lines.push('  canary    none');
  }
  return lines.join('\n');
}

/** The business metric per variant and the change with its interval, when outcomes arrive. */
export function businessLine(a: any): string {
  const b = a.baseline?.business, c = a.canary?.business, ch = a.canary?.businessChange;
  if (!b || !c || (b.n === 0 && c.n === 0)) return '';
  const change = ch ? `, change ${pct(ch.value)} [${pct(ch.low)}, ${pct(ch.high)}]` : '';
  return `  business: baseline ${b.mean.toFixed(4)} (n=${b.n}), canary ${c.mean.toFixed(4)} (n=${c.n})${change}, p=${a.canary.businessPValue?.toFixed(4) ?? '-'}\n`;
}

function statsRows(a: any) {
  return [['baseline', a.baseline], ['canary', a.canary]].map(([role, s]: any) => [role, s?.version, s?.requests, pct(s?.errorRate), msf(s?.p50), msf(s?.p95), msf(s?.p99)]);
}

/** Every client command of DESIGN.md §3. Returns true if it handled `command`. */
export async function runClientCommand(command: string, rest: string[]): Promise<boolean> {
  const api = client();
  const print = (json: boolean | string | undefined, data: unknown, human: () => string) => out(json ? JSON.stringify(data, null, 2) : human());
  switch (command) {
    case 'deployments': {
      const { values } = parse(rest, {}, []);
      const r = await api.call('GET', '/v1/deployments');
      print(values.json, r, () => r.deployments.length === 0 ? 'no deployments yet: canary deploy <name> --version v1 --url http://model:8000' : table(
        ['NAME', 'STATUS', 'BASELINE', 'CANARY', 'WEIGHT', 'VERDICT'],
        r.deployments.map((d: any) => [d.name, d.status, d.baseline.version, d.canary?.version, d.canary ? `${d.canary.weight}%` : null, verdictColor(d.canary?.lastVerdict)]),
      ));
      return true;
    }
    case 'deploy': {
      const { values, args } = parse(rest, { version: { type: 'string' }, url: { type: 'string' }, metadata: { type: 'string' }, policy: { type: 'string' } }, ['name']);
      if (!values.version || !values.url) throw new UsageError('deploy needs --version and --url of the baseline model server');
      const d = await api.call('POST', '/v1/deployments', { name: args[0], baseline: { version: values.version, url: values.url, ...(values.metadata ? { metadata: jsonOption(values.metadata, 'metadata') } : {}) }, ...(values.policy ? { policy: jsonOption(values.policy, 'policy') } : {}) });
      print(values.json, d, () => `created ${d.name} with baseline ${d.baseline.version}\n${showDeployment(d)}`);
      return true;
    }
    case 'register': {
      const { values, args } = parse(rest, { version: { type: 'string' }, url: { type: 'string' }, metadata: { type: 'string' } }, ['name']);
      if (!values.version || !values.url) throw new UsageError('register needs --version and --url');
      const v = await api.call('POST', `/v1/deployments/${enc(args[0])}/versions`, { version: values.version, url: values.url, ...(values.metadata ? { metadata: jsonOption(values.metadata, 'metadata') } : {}) });
      print(values.json, v, () => `registered ${args[0]} ${v.version} at ${v.url} (${v.state})`);
      return true;
    }
    case 'versions': {
      const { values, args } = parse(rest, {}, ['name']);
      const r = await api.call('GET', `/v1/deployments/${enc(args[0])}/versions`);
      print(values.json, r, () => table(['VERSION', 'STATE', 'HEALTHY', 'URL', 'REGISTERED', 'ACCURACY'],
        r.versions.map((v: any) => [v.version, v.state, v.healthy === null ? null : v.healthy ? color.green('yes') : color.red('no'), v.url, time(v.registeredAt), v.metadata?.metrics?.accuracy ?? null])));
      return true;
    }
    case 'start': {
      const { values, args } = parse(rest, { version: { type: 'string' }, url: { type: 'string' }, weight: { type: 'string' }, steps: { type: 'string' }, interval: { type: 'string' }, policy: { type: 'string' } }, ['name']);
      if (!values.version) throw new UsageError('start needs --version (and --url if the version is not registered)');
      const policy = { ...(jsonOption(values.policy, 'policy') as object | undefined) } as Record<string, unknown>;
      if (typeof values.steps === 'string') policy.steps = values.steps.split(',').map((s) => { const n = Number(s); if (!Number.isFinite(n)) throw new UsageError(`--steps: ${s} is not a number`); return n; });
      if (typeof values.interval === 'string') policy.interval = values.interval;
      const d = await api.call('POST', `/v1/deployments/${enc(args[0])}/canary`, { version: values.version, ...(values.url ? { url: values.url } : {}), ...(values.weight !== undefined ? { weight: num(values.weight, 'weight') } : {}), ...(Object.keys(policy).length ? { policy } : {}) });
      print(values.json, d, () => `canary ${d.canary.version} started at ${d.canary.weight}%\n${showDeployment(d)}`);
      return true;
    }
    case 'status': {
      const { values, args } = parse(rest, { watch: { type: 'boolean', short: 'w' }, every: { type: 'string' } }, ['name']);
      const every = num(values.every, 'every') ?? 2;
      for (;;) {
        const d = await api.call('GET', `/v1/deployments/${enc(args[0])}`);
        const a = d.canary ? await api.call('GET', `/v1/deployments/${enc(args[0])}/analysis?limit=1`) : null;
        const data = { deployment: d, analysis: a?.latest ?? null };
        const human = () => {
          let s = showDeployment(d);
          if (a?.latest) s += `\n  why       ${a.latest.reasons.join('\n            ')}`;
          return s;
        };
        if (!values.watch) { print(values.json, data, human); return true; }
        if (values.json) out(JSON.stringify(data));
        else out(`${process.stdout.isTTY ? '\x1b[2J\x1b[H' : ''}${time(new Date().toISOString())}\n${human()}\n`);
        if (!d.canary) { if (!values.json) out('no canary running: done watching'); return true; }
        await sleep(every * 1000);
      }
    }
    case 'traffic': {
      const { values, args } = parse(rest, {}, ['name', 'weight']);
      const weight = Number(args[1]);
      if (!Number.isFinite(weight)) throw new UsageError(`weight must be a number from 0 to 100, got ${JSON.stringify(args[1])}`);
      const d = await api.call('PUT', `/v1/deployments/${enc(args[0])}/traffic`, { weight });
      print(values.json, d, () => `canary ${d.canary.version} now at ${d.canary.weight}%\n${showDeployment(d)}`);
      return true;
    }
    case 'promote': case 'rollback': {
      const { values, args } = parse(rest, { reason: { type: 'string' }, to: { type: 'string' } }, ['name']);
      if (command === 'promote' && values.to) throw new UsageError('--to is only for rollback');
      const d = await api.call('POST', `/v1/deployments/${enc(args[0])}/${command}`, { ...(values.reason ? { reason: values.reason } : {}), ...(values.to ? { toVersion: values.to } : {}) });
      print(values.json, d, () => `${command === 'promote' ? 'promoted' : 'rolled back'}: baseline is ${d.baseline.version}\n${showDeployment(d)}`);
      return true;
    }
    case 'pause': case 'resume': {
      const { values, args } = parse(rest, {}, ['name']);
      const d = await api.call('POST', `/v1/deployments/${enc(args[0])}/${command}`);
      print(values.json, d, () => `${args[0]} is ${d.status}`);
      return true;
    }
    case 'evaluate': {
      const { values, args } = parse(rest, {}, ['name']);
      const r = await api.call('POST', `/v1/deployments/${enc(args[0])}/evaluate`);
      print(values.json, r, () => `${verdictColor(r.verdict)}  ${r.actions.map((a: any) => a.type).join(', ') || 'hold'}\n  ${r.reasons.join('\n  ')}\n${table(['ROLE', 'VERSION', 'REQUESTS', 'ERRORS', 'P50', 'P95', 'P99'], statsRows(r))}`);
      return true;
    }
    case 'health': {
      const { values, args } = parse(rest, {}, ['name']);
      const a = await api.call('GET', `/v1/deployments/${enc(args[0])}/analysis?limit=1`);
      print(values.json, a, () => {
        if (!a.latest) return a.canary ? `canary ${a.canary.version}: no analysis yet` : `no canary has run for ${args[0]}`;
        return `canary ${a.canary.version} (${a.canary.outcome}) — ${verdictColor(a.latest.verdict)} at ${time(a.latest.at)}, weight ${a.latest.weight}%\n` +
          `${table(['ROLE', 'VERSION', 'REQUESTS', 'ERROR RATE', 'P50', 'P95', 'P99'], statsRows(a.latest))}\n${businessLine(a.latest)}  ${a.latest.reasons.join('\n  ')}`;
      });
      return true;
    }
    case 'metrics': {
      const { values, args } = parse(rest, { limit: { type: 'string' } }, ['name']);
      const a = await api.call('GET', `/v1/deployments/${enc(args[0])}/analysis?limit=${num(values.limit, 'limit') ?? 20}`);
      print(values.json, a, () => a.history.length === 0 ? 'no analyses yet' : table(['TIME', 'WEIGHT', 'VERDICT', 'BASE REQ', 'BASE ERR', 'BASE P95', 'CAN REQ', 'CAN ERR', 'CAN P95', 'CAN P99', 'ACTION'],
        a.history.map((h: any) => [time(h.at), `${h.weight}%`, verdictColor(h.verdict), h.baseline?.requests, pct(h.baseline?.errorRate), msf(h.baseline?.p95), h.canary?.requests, pct(h.canary?.errorRate), msf(h.canary?.p95), msf(h.canary?.p99), h.action])));
      return true;
    }
    case 'history': {
      const { values, args } = parse(rest, { limit: { type: 'string' } }, ['name']);
      const r = await api.call('GET', `/v1/deployments/${enc(args[0])}/events?limit=${num(values.limit, 'limit') ?? 50}`);
      print(values.json, r, () => table(['TIME', 'EVENT', 'ACTOR', 'REASON'], r.events.map((e: any) => [time(e.at), e.type, e.actor, e.reason ? (e.reason.length > 100 ? `${e.reason.slice(0, 97)}...` : e.reason) : null])));
      return true;
    }
    default:
      return false;
  }
}

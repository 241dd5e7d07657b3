import { client, enc, jsonOption, num, parse, print, UsageError, warnIfDown } from '../args.js';
import { ago, color, table, time, verdictColor } from '../format.js';
import { showDeployment } from '../render.js';
/** `canary deployments|deploy|register|versions|history`. */
export async function deploymentCommands(command: string, rest: string[]): Promise<boolean> {
  const api = client();
  switch (command) {
    case 'deployments': {
      const { values } = parse(rest, {}, []);
      const r = await api.call('GET', '/v1/deployments');
      print(values.json, r, () =>
        r.deployments.length === 0
          ? 'no deployments yet: canary deploy <name> --version v1 --url http://model:8000'
          : table(
              ['NAME', 'STATUS', 'BASELINE', 'CANARY', 'WEIGHT', 'VERDICT', 'LAST CANARY'],
              r.deployments.map((d: any) => [
                d.name,
                d.status,
                d.baseline.version,
                d.canary?.version,
                d.canary ? `${d.canary.weight}%` : null,
                verdictColor(d.canary?.lastVerdict),
                d.lastCanary
                  ? `${d.lastCanary.version} ${d.lastCanary.outcome.replace('_', ' ')} ${ago(d.lastCanary.endedAt)}`
                  : null,
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
      if (!values.json) await warnIfDown(String(values.url));
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
      if (!values.json) await warnIfDown(String(values.url));
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
    case 'history': {
      const { values, args } = parse(rest, { limit: { type: 'string' }, version: { type: 'string' } }, ['name']);
      const version = typeof values.version === 'string' ? `&version=${enc(values.version)}` : '';
      const r = await api.call(
        'GET',
        `/v1/deployments/${enc(args[0])}/events?limit=${num(values.limit, 'limit') ?? 50}${version}`,
      );
      print(values.json, r, () =>
        table(
          ['TIME', 'EVENT', 'VERSION', 'ACTOR', 'REASON'],
          r.events.map((e: any) => [
            time(e.at),
            e.type,
            e.version,
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

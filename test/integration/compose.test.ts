import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { DEFAULTS, ENV_VARS } from '../../common/config.js';

const run = promisify(execFile);
const compose = parse(readFileSync('compose.yaml', 'utf8'));
const known = new Set<string>(ENV_VARS);

test("compose.yaml passes docker-compose's own validation (no engine needed)", async () => {
  // Debian's docker-compose (Compose v1), installed by .ci/run.
  const r = await run('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], {
    env: { ...process.env, CANARY_API_TOKEN: 'validation-only' },
  });
  assert.equal(r.stderr.trim(), '');
  // Without a token it refuses, rather than start an open API.
  const env = { ...process.env };
  delete env.CANARY_API_TOKEN;
  await assert.rejects(run('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], { env }), /set CANARY_API_TOKEN/);
});

test('every file compose.yaml refers to exists', () => {
  for (const [name, svc] of Object.entries<any>(compose.services)) {
    if (svc.build) assert.ok(existsSync(path.join(svc.build, 'Dockerfile')), `${name}: Dockerfile`);
    for (const v of svc.volumes ?? []) {
      const host = String(v).split(':')[0];
      if (host.startsWith('.')) assert.ok(existsSync(host), `${name}: ${host}`);
    }
  }
});

test('canary-mesh services use only real config names and their documented ports', () => {
  const ours = Object.entries<any>(compose.services).filter(([, s]) => s.image === 'canary-mesh:latest');
  assert.deepEqual(ours.map(([n]) => n).sort(), ['control-plane', 'model-v1', 'model-v2', 'proxy']);
  for (const [name, svc] of ours) {
    for (const key of Object.keys(svc.environment ?? {}))
      assert.ok(known.has(key), `${name}: ${key} is not a canary-mesh setting`);
    const env = svc.environment ?? {};
    const containerPorts = (svc.ports ?? []).map((p: string) => Number(String(p).split(':').pop()));
    const expected: Record<string, number[]> = {
      'control-plane': [
        Number(env.CANARY_API_PORT ?? DEFAULTS.apiPort),
        Number(env.CANARY_XDS_PORT ?? DEFAULTS.xdsPort),
      ],
      proxy: [Number(env.CANARY_PROXY_PORT ?? DEFAULTS.proxyPort), Number(env.CANARY_ADMIN_PORT ?? DEFAULTS.adminPort)],
    };
    if (expected[name]) assert.deepEqual(containerPorts.sort(), expected[name].sort(), `${name} ports`);
  }
  assert.equal(
    compose.services['control-plane'].environment.CANARY_API_TOKEN,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's own ${VAR:?message} syntax, not a template
    '${CANARY_API_TOKEN:?set CANARY_API_TOKEN to protect the API}',
    'no secret in the file',
  );
  assert.ok(compose.volumes.pgdata !== undefined, 'named volume for PostgreSQL');
  assert.equal(compose.name, undefined, 'Compose v1 validation: no top-level name');
});

test("Prometheus scrapes the control plane, the proxy admin port and Envoy's stats listener, and loads the alert rules", () => {
  const prom = parse(readFileSync('prometheus/prometheus.yml', 'utf8'));
  const targets = prom.scrape_configs.flatMap((c: any) => c.static_configs.flatMap((s: any) => s.targets));
  assert.ok(targets.includes(`proxy:${DEFAULTS.adminPort}`));
  assert.ok(targets.includes('envoy:9903'));
  assert.ok(targets.includes('control-plane:8090'));
  assert.deepEqual(prom.rule_files, ['/etc/prometheus/alerts.yml']);
  const compose = parse(readFileSync('compose.yaml', 'utf8'));
  assert.ok(compose.services.prometheus.volumes.includes('./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro'));
});

test("the alert rules pass `promtool check rules` (Debian's prometheus package) and name only metrics the code exports", async () => {
  const { stdout } = await run('promtool', ['check', 'rules', 'prometheus/alerts.yml']);
  assert.match(stdout, /SUCCESS: 9 rules found/);
  const rules = readFileSync('prometheus/alerts.yml', 'utf8');
  const code = ['proxy/telemetry/recorder.ts', 'proxy/telemetry/stream-metrics.ts', 'control-plane/telemetry.ts']
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  for (const [, metric] of rules.matchAll(/\b(canary_(?:cp|proxy)_[a-z_]+?)(?:_total)?\b/g)) {
    assert.ok(code.includes(`'${metric}`), `${metric} is not exported by the code`);
  }
});

test("CanaryStreamErrors fires when error events and cuts pass 2% of a version's streams, and not below (`promtool test rules`)", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'promtool-'));
  const series = (end: string, perMin: number) =>
    `      - series: 'canary_proxy_streams_total{deployment="chat",version="v2",role="canary",end="${end}"}'\n        values: '0+${perMin}x20'`;
  const spec = (
    errorsPerMin: number,
    expected: string,
  ) => `rule_files: [${JSON.stringify(path.resolve('prometheus/alerts.yml'))}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
${series('complete', 1000)}
${series('error_event', errorsPerMin)}
${series('cut', 0)}
${series('client_gone', 50)}
    alert_rule_test:
      - eval_time: 15m
        alertname: CanaryStreamErrors
        exp_alerts:${expected}
`;
  const firing = `
          - exp_labels: { severity: warning, deployment: chat, version: v2 }
            exp_annotations:
              summary: "More than 2% of the streams of chat v2 end in an error event or are cut after their 200"
              description: "Errors inside streams reach users although the status was 200; see \`canary health chat\`."`;
  await writeFile(path.join(dir, 'fires.yml'), spec(50, firing));
  await writeFile(path.join(dir, 'quiet.yml'), spec(10, ' []'));
  const { stdout } = await run('promtool', ['test', 'rules', path.join(dir, 'fires.yml'), path.join(dir, 'quiet.yml')]);
  assert.match(stdout, /SUCCESS/);
  await rm(dir, { recursive: true, force: true });
});

test('every shipped alert has unit tests (`promtool test rules prometheus/alerts.test.yml`), the first rollback of a deployment included', async () => {
  const { stdout } = await run('promtool', ['test', 'rules', 'prometheus/alerts.test.yml']);
  assert.match(stdout, /SUCCESS/);
  const alerts = [...readFileSync('prometheus/alerts.yml', 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
  const tested = new Set(
    [...readFileSync('prometheus/alerts.test.yml', 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]),
  );
  assert.deepEqual(
    alerts.filter((a) => !tested.has(a)),
    [],
    'alerts without a unit test',
  );
});

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    if (f === 'node_modules' || f === 'generated') return [];
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('the sources read only listed environment variables, and the README documents every one', () => {
  const readme = readFileSync('README.md', 'utf8');
  for (const v of ENV_VARS) assert.ok(readme.includes(v), `README does not mention ${v}`);
  for (const file of ['common', 'proxy', 'control-plane', 'model-servers', 'cli'].flatMap(sources)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:process\.env|\benv)(?:\.([A-Z][A-Z0-9_]+)|\[['"]([A-Z][A-Z0-9_]+)['"]\])/g)) {
      const name = m[1] ?? m[2];
      assert.ok(known.has(name), `${file} reads ${name}, which is not in ENV_VARS`);
    }
    for (const m of text.matchAll(/int\(env, '([A-Z_]+)'|duration\(env, '([A-Z_]+)'|url\(env, '([A-Z_]+)'/g)) {
      const name = m[1] ?? m[2] ?? m[3];
      assert.ok(known.has(name), `${file} reads ${name}, which is not in ENV_VARS`);
    }
  }
});

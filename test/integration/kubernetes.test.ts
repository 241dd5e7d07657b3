import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { ENV_VARS } from '../../common/config.js';

// The Kubernetes manifests in k8s/, checked offline: each object against the Kubernetes API's
// JSON schemas (kubernetes-models), and against each other and the code (ports, probes, env).

type Obj = Record<string, any>;
const MODELS: Record<string, new (o: Obj) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
};
const docs: { file: string; obj: Obj }[] = readdirSync('k8s')
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) =>
    parseAllDocuments(readFileSync(path.join('k8s', f), 'utf8')).map((d) => ({ file: f, obj: d.toJS() as Obj })),
  );
const of = (kind: string) => docs.filter((d) => d.obj.kind === kind).map((d) => d.obj);

// The schemas allow unknown fields (the API server warns or refuses them); a typo in a
// container's fields would pass them, so the container's keys are checked against the API's list.
const CONTAINER_FIELDS = new Set(
  'name image command args workingDir ports envFrom env resources resizePolicy restartPolicy volumeMounts volumeDevices livenessProbe readinessProbe startupProbe lifecycle terminationMessagePath terminationMessagePolicy imagePullPolicy securityContext stdin stdinOnce tty'.split(
    ' ',
  ),
);

test('every manifest in k8s/ is valid against the Kubernetes API schemas', () => {
  assert.ok(docs.length >= 8, `${docs.length} objects`);
  for (const { file, obj } of docs) {
    const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
    assert.ok(Model, `${file}: ${obj.apiVersion} ${obj.kind} is not one the test knows`);
    assert.doesNotThrow(() => new Model(obj).validate(), `${file}: ${obj.kind} ${obj.metadata?.name}`);
  }
  // The validation can fail: a probe port of the wrong type is refused.
  const broken = structuredClone(of('Deployment')[0]);
  broken.spec.template.spec.containers[0].readinessProbe.httpGet.port = { wrong: true };
  assert.throws(() => new Deployment(broken).validate());
});

test('the control plane and the proxy sidecar: probes on their health endpoints, resources, settings from the ConfigMap and Secret', () => {
  const known = new Set<string>(ENV_VARS);
  const config = of('ConfigMap').find((c) => c.metadata.name === 'canary-mesh-config')!;
  const secret = of('Secret').find((s) => s.metadata.name === 'canary-mesh-secrets')!;
  for (const key of [...Object.keys(config.data), ...Object.keys(secret.stringData)])
    assert.ok(known.has(key), `${key} is not a setting canary-mesh reads`);
  assert.ok(secret.stringData.CANARY_API_TOKEN, 'the API token comes from the Secret');
  const containers = of('Deployment').flatMap((d) =>
    d.spec.template.spec.containers.map((c: Obj) => ({ deployment: d.metadata.name, c })),
  );
  for (const { deployment, c } of containers) {
    const where = `${deployment}/${c.name}`;
    for (const k of Object.keys(c)) assert.ok(CONTAINER_FIELDS.has(k), `${where}: unknown container field ${k}`);
    assert.ok(c.resources?.requests && c.resources?.limits, `${where}: resources`);
    assert.ok(c.readinessProbe, `${where}: a readiness probe`);
    const ports = new Set((c.ports ?? []).map((p: Obj) => p.name));
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean))
      assert.ok(ports.has(probe.httpGet.port), `${where}: probe port ${probe.httpGet.port} is not a container port`);
    for (const e of c.env ?? []) assert.ok(known.has(e.name), `${where}: ${e.name} is not a setting canary-mesh reads`);
    assert.ok(['control-plane', 'proxy', 'model-server'].includes(c.args[0]), `${where}: canary ${c.args[0]}`);
  }
  const byCommand = (cmd: string) => containers.filter(({ c }) => c.args[0] === cmd).map(({ c }) => c);
  for (const cp of byCommand('control-plane')) {
    assert.equal(cp.readinessProbe.httpGet.path, '/readyz');
    assert.equal(cp.livenessProbe.httpGet.path, '/livez');
    assert.deepEqual(
      cp.ports.map((p: Obj) => p.containerPort),
      [Number(config.data.CANARY_API_PORT), Number(config.data.CANARY_XDS_PORT)],
    );
  }
  const proxies = byCommand('proxy');
  assert.ok(proxies.length >= 1, 'a proxy sidecar');
  for (const p of proxies) {
    assert.equal(p.readinessProbe.httpGet.path, '/readyz');
    assert.equal(p.livenessProbe.httpGet.path, '/healthz');
    assert.deepEqual(
      p.ports.map((x: Obj) => x.containerPort),
      [Number(config.data.CANARY_PROXY_PORT), Number(config.data.CANARY_ADMIN_PORT)],
    );
    assert.ok(
      p.env.some((e: Obj) => e.name === 'CANARY_DEPLOYMENT'),
      'sidecar mode names its deployment',
    );
  }
});

test('every Service selects pods of a Deployment and targets a port their containers name', () => {
  const deployments = of('Deployment');
  for (const s of of('Service')) {
    const matching = deployments.filter((d) =>
      Object.entries(s.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v),
    );
    assert.ok(matching.length > 0, `Service ${s.metadata.name} selects no Deployment's pods`);
    for (const d of matching) {
      const named = new Set(
        d.spec.template.spec.containers.flatMap((c: Obj) => (c.ports ?? []).map((p: Obj) => p.name)),
      );
      for (const port of s.spec.ports)
        assert.ok(named.has(port.targetPort), `Service ${s.metadata.name}: ${port.targetPort} in ${d.metadata.name}`);
    }
    for (const d of deployments)
      assert.deepEqual(
        d.spec.selector.matchLabels,
        Object.fromEntries(
          Object.keys(d.spec.selector.matchLabels).map((k) => [k, d.spec.template.metadata.labels[k]]),
        ),
      );
  }
});

test('the image runs on a supported Node (the Dockerfile is on Node 24)', () => {
  const froms = [...readFileSync('Dockerfile', 'utf8').matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.ok(froms.length > 0 && froms.every((f) => /^node:24\b/.test(f)), froms.join(', '));
});

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { loadControlPlaneConfig } from '../../common/config.js';
import { buildApp } from '../../control-plane/api/app.js';
import { startControlPlane } from '../../control-plane/main.js';
import { freshSchema, REDIS_URL, silent, testPrefix } from '../helpers/servers.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('the API describes itself: /openapi.json is a valid OpenAPI 3.1 document with every route, and /docs is a page for people', async () => {
  const schema = await freshSchema();
  const cp = await startControlPlane(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: 'off',
      CANARY_API_TOKEN: 'token-for-openapi',
    }),
    { logger: silent },
  );
  cleanups.push(
    () => schema.drop(),
    () => cp.close(),
  );
  const res = await fetch(`${cp.url}/openapi.json`); // no token needed to read the description
  assert.equal(res.status, 200);
  const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.equal(doc.openapi, '3.1.0');
  const result = await new Validator().validate(doc as never);
  assert.equal(result.valid, true, String(JSON.stringify(result)).slice(0, 3000));
  // Every route the API answers (but the documentation's own) is in the document: build the
  // same app and note each route as it is added.
  const app = buildApp({ rollout: cp.rollout, feedback: cp.feedback, token: null, logger: silent });
  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) routes.push(`${m} ${r.url}`);
  });
  await app.ready();
  await app.close();
  const documented = new Set(
    Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`),
    ),
  );
  const missing = routes.filter(
    (r) => !r.startsWith('HEAD ') && !r.includes('/docs') && !r.endsWith('/openapi.json') && !documented.has(r),
  );
  assert.ok(routes.length > 20, `found ${routes.length} routes`);
  assert.deepEqual(missing, []);
  const body = await (await fetch(`${cp.url}/docs/`)).text();
  assert.match(body, /swagger|openapi/i);
});

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadControlPlaneConfig } from '../../common/config.js';
import { type RunningControlPlane, startControlPlane } from '../../control-plane/main.js';
import { freshSchema, REDIS_URL, silent, testPrefix } from '../helpers/servers.js';

/**
 * Every change acts on the state its caller saw. Over real HTTP, on real PostgreSQL and on the
 * embedded one: promote and rollback sent at the same moment, 50 pairs; stale If-Match; a body
 * naming another canary.
 */
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function http(
  cp: RunningControlPlane,
  method: string,
  p: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(cp.url + p, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, etag: res.headers.get('etag'), json: (await res.json()) as any };
}

async function onRealPostgres(): Promise<RunningControlPlane> {
  const schema = await freshSchema();
  const cp = await startControlPlane(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
      CANARY_API_HOST: '127.0.0.1',
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
    }),
    { logger: silent },
  );
  cleanups.push(async () => {
    await cp.close();
    await schema.drop();
  });
  return cp;
}

async function onEmbedded(): Promise<RunningControlPlane> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-pre-'));
  const cp = await startControlPlane(
    loadControlPlaneConfig({
      CANARY_DATA_DIR: dir,
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
      CANARY_API_HOST: '127.0.0.1',
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
    }),
    { logger: silent },
  );
  cleanups.push(async () => {
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  });
  return cp;
}

for (const [where, start] of [
  ['real PostgreSQL', onRealPostgres],
  ['the embedded database', onEmbedded],
] as const) {
  test(`${where}: 50 promote/rollback pairs at once — exactly one wins each time, and the baseline is never rolled back unasked`, async () => {
    const cp = await start();
    const manual = { autoPromote: false, autoRollback: false, interval: '1h' };
    for (let i = 0; i < 50; i++) {
      const name = `race${i}`;
      assert.equal(
        (await http(cp, 'POST', '/v1/deployments', { name, baseline: { version: 'v1', url: 'http://127.0.0.1:9101' } }))
          .status,
        201,
      );
      assert.equal(
        (
          await http(cp, 'POST', `/v1/deployments/${name}/canary`, {
            version: 'v3',
            url: 'http://127.0.0.1:9103',
            weight: 10,
            policy: manual,
          })
        ).status,
        201,
      );
    }
    const pairs = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        Promise.all([
          http(cp, 'POST', `/v1/deployments/race${i}/promote`, { reason: 'operator A' }),
          http(cp, 'POST', `/v1/deployments/race${i}/rollback`, { reason: 'operator B' }),
        ]),
      ),
    );
    for (const [i, [promote, rollback]] of pairs.entries()) {
      const wins = [promote, rollback].filter((r) => r.status < 300);
      assert.equal(wins.length, 1, `pair ${i}: promote ${promote.status}, rollback ${rollback.status}`);
      const loser = promote.status < 300 ? rollback : promote;
      assert.ok([409].includes(loser.status), `pair ${i}: the loser got ${loser.status} ${JSON.stringify(loser.json)}`);
      const d = (await http(cp, 'GET', `/v1/deployments/race${i}`)).json;
      // Promote won: v3 serves. Rollback won: the canary is gone and v1 serves. Never v1 after a promotion.
      assert.equal(d.baseline.version, promote.status < 300 ? 'v3' : 'v1', `pair ${i}`);
      assert.equal(d.canary, null);
    }
  });

  test(`${where}: a stale If-Match gets 412 and changes nothing; a body naming another canary gets 409`, async () => {
    const cp = await start();
    await http(cp, 'POST', '/v1/deployments', {
      name: 'pre',
      baseline: { version: 'v1', url: 'http://127.0.0.1:9101' },
    });
    await http(cp, 'POST', '/v1/deployments/pre/canary', {
      version: 'v2',
      url: 'http://127.0.0.1:9102',
      weight: 5,
      policy: { autoPromote: false, interval: '1h' },
    });
    const seen = await http(cp, 'GET', '/v1/deployments/pre');
    assert.match(seen.etag!, /^"\d+"$/);
    // Someone else changes it…
    const other = await http(cp, 'PUT', '/v1/deployments/pre/traffic', { weight: 20 }, { 'if-match': seen.etag! });
    assert.equal(other.status, 200);
    assert.notEqual(other.etag, seen.etag);
    // …so every mutation sent with the old ETag is refused, and nothing changes.
    for (const [method, p, body] of [
      ['PUT', '/v1/deployments/pre/traffic', { weight: 50 }],
      ['POST', '/v1/deployments/pre/promote', {}],
      ['POST', '/v1/deployments/pre/rollback', {}],
      ['POST', '/v1/deployments/pre/pause', {}],
      ['POST', '/v1/deployments/pre/resume', {}],
    ] as const) {
      const r = await http(cp, method, p, body, { 'if-match': seen.etag! });
      assert.equal(r.status, 412, `${method} ${p}`);
      assert.equal(r.json.error.code, 'PRECONDITION_FAILED');
    }
    const now = await http(cp, 'GET', '/v1/deployments/pre');
    assert.equal(now.etag, other.etag);
    assert.equal(now.json.canary.weight, 20);
    // Naming the canary: v3 is not running.
    const wrong = await http(cp, 'POST', '/v1/deployments/pre/promote', { canary: 'v3' });
    assert.equal(wrong.status, 409);
    assert.equal(wrong.json.error.code, 'CANARY_MISMATCH');
    assert.equal(
      (await http(cp, 'PUT', '/v1/deployments/pre/traffic', { weight: 30, canary: 'v3' })).json.error.code,
      'CANARY_MISMATCH',
    );
    assert.equal(
      (await http(cp, 'POST', '/v1/deployments/pre/promote', { canary: 'v2' }, { 'if-match': now.etag! })).status,
      200,
    );
    assert.equal((await http(cp, 'GET', '/v1/deployments/pre')).json.baseline.version, 'v2');
    assert.equal(
      (await http(cp, 'POST', '/v1/deployments/pre/pause', {}, { 'if-match': 'yesterday' })).json.error.code,
      'BAD_REQUEST',
    );
  });

  test(`${where}: rollback with no canary is 409 NO_CANARY; the baseline rolls back only when asked, and the event says from which to which`, async () => {
    const cp = await start();
    await http(cp, 'POST', '/v1/deployments', {
      name: 'rb',
      baseline: { version: 'v1', url: 'http://127.0.0.1:9101' },
    });
    await http(cp, 'POST', '/v1/deployments/rb/canary', {
      version: 'v2',
      url: 'http://127.0.0.1:9102',
      policy: { autoPromote: false, interval: '1h' },
    });
    await http(cp, 'POST', '/v1/deployments/rb/promote', {});
    const none = await http(cp, 'POST', '/v1/deployments/rb/rollback', {});
    assert.equal(none.status, 409);
    assert.equal(none.json.error.code, 'NO_CANARY');
    assert.equal((await http(cp, 'GET', '/v1/deployments/rb')).json.baseline.version, 'v2');
    const asked = await http(cp, 'POST', '/v1/deployments/rb/rollback', { target: 'baseline', reason: 'v2 is wrong' });
    assert.equal(asked.status, 200);
    assert.equal(asked.json.baseline.version, 'v1');
    const [e] = (await http(cp, 'GET', '/v1/deployments/rb/events?limit=1')).json.events;
    assert.equal(e.type, 'rolled_back');
    assert.deepEqual([e.before.baseline, e.after.baseline], ['v2', 'v1']);
  });
}

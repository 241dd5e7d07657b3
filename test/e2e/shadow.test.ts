import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { CANARY_BIN } from '../../common/processes.js';
import { startStack } from '../../control-plane/main.js';
import { loadIris } from '../../model-servers/iris.js';
import { startModelServer } from '../../model-servers/server.js';
import { eventually, silent } from '../helpers/servers.js';

/**
 * The shadow gate on the whole stack, driven over HTTP as a user would: a canary that agrees
 * with the baseline goes live through the gate; one that agrees on ~73% of real flowers is
 * rolled back in shadow — and no user ever got an answer from either before the gate.
 */
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function stack() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canary-shadow-'));
  const s = await startStack(
    loadControlPlaneConfig({ CANARY_DATA_DIR: dir, CANARY_API_PORT: '0', CANARY_XDS_PORT: 'off' }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
  cleanups.push(
    () => rm(dir, { recursive: true, force: true }),
    () => s.close(),
  );
  const api = async (method: string, p: string, body?: unknown) => {
    const r = await request(`${s.controlPlane.url}${p}`, {
      method: method as 'GET',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await r.body.json()) as any;
    if (r.statusCode >= 400) throw new Error(`${method} ${p}: ${r.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  return { s, api };
}

/** Polls until `check` gives something other than null/false. */
async function until<T>(check: () => Promise<T | null | false> | T | null | false, timeoutMs: number): Promise<T> {
  return eventually(
    async () => {
      const v = await check();
      if (v === null || v === false) throw new Error(`not yet after ${timeoutMs} ms`);
      return v as T;
    },
    timeoutMs,
    100,
  );
}

/** Real flowers through the proxy until stopped; the variant of every answer is kept. */
function traffic(url: string) {
  const rows = loadIris();
  const variants: string[] = [];
  const at: number[] = [];
  let running = true;
  const loops = Array.from({ length: 4 }, async (_, k) => {
    for (let i = k; running; i += 4) {
      const r = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ features: rows[i % rows.length].features }),
      });
      await r.body.dump();
      variants.push(`${r.statusCode} ${r.headers['x-canary-variant']}`);
      at.push(Date.now());
    }
  });
  return {
    variants,
    at,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

const SHADOW = { percent: 100, duration: '2s', compare: { field: '/prediction' }, agreementMin: 0.9, minRequests: 150 };

for (const [model, passes] of [
  ['v3', true],
  ['v4', false],
] as const) {
  test(`shadow gate: ${model} (${passes ? 'agrees with v1 on 99% of flowers' : 'agrees with v1 on ~73% of flowers'}) ${passes ? 'goes live through the gate' : 'is rolled back before any user got an answer from it'}`, async () => {
    const { s, api } = await stack();
    const v1 = await startModelServer({ model: 'v1' });
    const candidate = await startModelServer({ model });
    cleanups.push(
      () => v1.close(),
      () => candidate.close(),
    );
    await api('POST', '/v1/deployments', { name: 'iris', baseline: { version: 'v1', url: v1.url } });
    const t = traffic(`${s.proxy.url}/iris/predict`);
    cleanups.push(() => t.stop());
    const started = await api('POST', '/v1/deployments/iris/canary', {
      version: model,
      url: candidate.url,
      policy: { interval: '500ms', steps: [20, 100], minRequests: 30, shadow: SHADOW },
    });
    assert.equal(started.canary.phase, 'shadow');
    assert.equal(started.canary.weight, 0);
    const ended = (await until(async () => {
      const events = (await api('GET', '/v1/deployments/iris/events?limit=50')).events as {
        type: string;
        after: any;
        at: string;
      }[];
      return events.find((e) => e.type === (passes ? 'shadow_passed' : 'shadow_failed')) ?? null;
    }, 40_000)) as { type: string; after: any; at: string };
    // Every answer a user received before the gate's event was committed came from the baseline.
    const before = t.variants.filter((_, i) => t.at[i] < Date.parse(ended.at));
    assert.ok(before.length > 100);
    assert.deepEqual(
      before.filter((v) => v !== '200 baseline'),
      [],
      'no user got an answer from the canary in shadow, and none failed',
    );
    const a = await api('GET', '/v1/deployments/iris/agreement');
    assert.ok(a.counts.compared >= (passes ? 150 : 20), JSON.stringify(a.counts));
    const rate = a.counts.agreed / a.counts.compared;
    if (passes) {
      assert.ok(rate > 0.95, `agreement ${rate}`);
      const d = await until(async () => {
        const d = await api('GET', '/v1/deployments/iris');
        return d.canary?.weight === 20 ? d : null;
      }, 10_000);
      assert.equal(d.canary.phase, 'live');
      await until(() => t.variants.some((v) => v === '200 canary'), 10_000);
    } else {
      assert.ok(rate > 0.6 && rate < 0.85, `agreement ${rate}`);
      assert.ok(a.examples.length > 0 && a.examples.length <= 50);
      assert.match(a.examples[0].inputSha256, /^[0-9a-f]{64}$/);
      assert.notEqual(a.examples[0].baseline, a.examples[0].canary);
      assert.equal(a.rule.status, 'fail');
      const d = await api('GET', '/v1/deployments/iris');
      assert.equal(d.canary, null);
      const events = (await api('GET', '/v1/deployments/iris/events?limit=50')).events.map(
        (e: { type: string }) => e.type,
      );
      assert.ok(
        events.includes('auto_rollback_triggered') &&
          events.includes('rolled_back') &&
          events.includes('shadow_started'),
      );
      assert.ok(
        ended.after.rules.some((r: { rule: string; status: string }) => r.rule === 'agreement' && r.status === 'fail'),
        'shadow_failed carries the evidence',
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(
        t.variants.every((v) => v === '200 baseline'),
        'no user ever got an answer from it',
      );
      // The CLI shows how the models differ.
      const { stdout } = await promisify(execFile)(process.execPath, [CANARY_BIN, 'agreement', 'iris'], {
        env: { ...process.env, NO_COLOR: '1', CANARY_API_URL: s.controlPlane.url },
      });
      assert.match(stdout, /canary v4 vs baseline v1 — rolled_back; comparing \/prediction/);
      assert.match(stdout, /agreement +\d+\.\d+% \(\d+\/\d+\), lower bound/);
      assert.match(stdout, /rule +fail: /);
      assert.match(
        stdout,
        /disagreements \(newest \d+ of the \d+ kept; --limit N for more\):\n.*REQUEST ID +INPUT SHA-256 +BASELINE +CANARY/,
      );
    }
    await t.stop();
  });
}

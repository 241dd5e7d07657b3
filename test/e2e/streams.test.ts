import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { startStack } from '../../control-plane/main.js';
import { DEFAULT_LLM, type LlmBehaviour, startLlmServer } from '../../model-servers/llm.js';
import { eventually, freshSchema, REDIS_URL, silent, testPrefix, untilRouted } from '../helpers/servers.js';

// The whole stack with the reference LLM server and the openai client streaming through the
// proxy, over HTTP: a canary is judged by its first token and its token rate, never by how long
// its answers are, and errors inside its streams are its failures.

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Streaming chat clients through the proxy until stopped; each stream's outcome is kept. */
function chatters(baseURL: string, concurrency = 8) {
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
  const results: ('ok' | 'error')[] = [];
  let running = true,
    i = 0;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const s = await client.chat.completions.create({
          model: 'any',
          messages: [{ role: 'user', content: `question ${i++}` }],
          stream: true,
          stream_options: { include_usage: true },
        });
        for await (const _ of s) {
          /* read every chunk, as a chat UI does */
        }
        results.push('ok');
      } catch {
        results.push('error');
      }
    }
  });
  return {
    results,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

const FAST: LlmBehaviour = { ...DEFAULT_LLM, ttftMs: 20, tpotMs: 3, tokens: [10, 30] };

async function rollout(canary: LlmBehaviour, policy: Record<string, unknown> = {}) {
  const v1 = await startLlmServer({ version: 'v1', behaviour: FAST });
  const v2 = await startLlmServer({ version: 'v2', behaviour: canary });
  const schema = await freshSchema();
  const stack = await startStack(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
      CANARY_ANALYSIS_TICK: '100ms',
      CANARY_LEADER_LEASE: '1s',
    }),
    loadProxyConfig({
      CANARY_PROXY_PORT: '0',
      CANARY_ADMIN_PORT: '0',
      CANARY_PROXY_HOST: '127.0.0.1',
      CANARY_STATS_FLUSH: '200ms',
    }),
    { logger: silent },
  );
  cleanups.push(
    () => schema.drop(),
    () => v1.close(),
    () => v2.close(),
    () => stack.close(),
  );
  const api = async (method: string, path: string, body?: unknown) =>
    (
      await fetch(stack.controlPlane.url + path, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
      })
    ).json();
  await api('POST', '/v1/deployments', { name: 'chat', baseline: { version: 'v1', url: v1.url } });
  await untilRouted(stack.proxy.adminUrl, 'chat');
  const load = chatters(`${stack.proxy.url}/chat/v1`);
  // The baseline streams first, so the latency and token-rate limits are fixed from its own answers.
  await eventually(() => assert.ok(load.results.length >= 400, `${load.results.length} baseline streams`), 60_000, 100);
  await sleep(1200); // flushed and readable in the window before the canary
  const started = await api('POST', '/v1/deployments/chat/canary', {
    version: 'v2',
    url: v2.url,
    weight: 50,
    policy: { interval: '1s', steps: [50, 100], minRequests: 50, ...policy },
  });
  assert.equal(started.canary?.version, 'v2', JSON.stringify(started));
  return { api, load };
}

async function decided(api: (m: string, p: string) => Promise<any>) {
  return eventually(
    async () => {
      const d = await api('GET', '/v1/deployments/chat');
      if (!d.canary) return d;
      const a = await api('GET', '/v1/deployments/chat/analysis?limit=1');
      assert.fail(`undecided at ${d.canary.weight}%: ${a.latest?.reasons.join('; ') ?? 'no analysis yet'}`);
    },
    // A canary as fast as the baseline is promoted once the p99 first-token test has its evidence
    // (thousands of streams at 50%): minutes when a busy machine slows the chatters down.
    300_000,
    200,
  );
}

test('a canary writing 2.5× longer answers at the same speed is promoted, its tokens per answer shown', async () => {
  // This test is about answer length. On a loaded machine both versions' first-token tails pass
  // the default 2× p99 limit, and the rule rightly holds the promotion as a fault both share
  // (a loaded CI run stayed undecided at 50% for 5 minutes): the limit here leaves room for that.
  const { api, load } = await rollout({ ...FAST, lengthScale: 2.5 }, { thresholds: { latencyP99Ratio: 4 } });
  const d = await decided(api);
  await load.stop();
  assert.equal(d.baseline.version, 'v2', 'promoted');
  const history = (await api('GET', '/v1/deployments/chat/analysis?limit=50')).history;
  // The ratio of two means of random answer lengths: read it on the analysis with the most canary
  // streams (the newest may have few, at a low weight or on a busy machine).
  const withStreams = history
    .filter((a: any) => a.canary?.streams && a.baseline?.streams)
    .sort((x: any, y: any) => y.canary.streams.streams - x.canary.streams.streams)[0];
  assert.ok(withStreams, 'analyses show stream stats');
  const ratio = withStreams.canary.streams.tokensPerAnswer / withStreams.baseline.streams.tokensPerAnswer;
  assert.ok(ratio > 2 && ratio < 3, `tokens per answer canary/baseline ${ratio}`);
  assert.deepEqual(
    load.results.filter((r) => r !== 'ok'),
    [],
  );
});

test('a canary whose first token is 280 ms later (though its tokens come faster) is rolled back by the first-token rule', async () => {
  const { api, load } = await rollout({ ...FAST, ttftMs: 300, tpotMs: 2 });
  const d = await decided(api);
  await load.stop();
  assert.equal(d.baseline.version, 'v1', 'rolled back');
  const latest = (await api('GET', '/v1/deployments/chat/analysis?limit=1')).latest;
  const failed = latest.rules.filter((r: any) => r.status === 'fail');
  assert.ok(
    failed.some((r: any) => r.rule.startsWith('latency_') && /first token/.test(r.summary)),
    latest.reasons.join('; '),
  );
});

test('a canary sending error events inside 30% of its streams is rolled back by the error rules', async () => {
  const { api, load } = await rollout({ ...FAST, errorEventRate: 0.3 });
  const d = await decided(api);
  await load.stop();
  assert.equal(d.baseline.version, 'v1', 'rolled back');
  const events = (await api('GET', '/v1/deployments/chat/events')).events.map((e: any) => e.type);
  assert.ok(!events.includes('step_advanced'), events.join(', '));
  const analyses = (await api('GET', '/v1/deployments/chat/analysis?limit=50')).history;
  const judged = analyses.find((a: any) => a.verdict === 'critical');
  // Eight failed streams in a row would have the proxy take it off traffic first (rare at 30%): also an error verdict.
  if (!judged && events.includes('proxy_tripped')) return;
  assert.ok(
    judged?.rules.some((r: any) => r.rule.startsWith('error_rate') && r.status === 'fail'),
    JSON.stringify(judged?.reasons),
  );
  assert.ok(judged.canary.streams.ends.errorEvent > 0, 'error events counted');
});

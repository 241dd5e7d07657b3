import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { type ChildServer, spawnModelServer } from '../common/processes.js';
import type { ApiClient } from './client.js';
import { DEMO_INTERVAL, out, step, waitFor } from './demo-kit.js';
import { color, msf } from './format.js';

type Server = ChildServer<{ url: string; version: string }>;

/** Streaming chat traffic through the proxy, as a chat front end sends it: each answer read to its end. */
class ChatTraffic {
  streams = { baseline: 0, canary: 0, failed: 0 };
  /** Why streams failed: HTTP status, "error event", or the client's error code. */
  readonly failures = new Map<string, number>();
  private failed(why: string): void {
    this.streams.failed++;
    this.failures.set(why, (this.failures.get(why) ?? 0) + 1);
  }
  private running = true;
  private loops: Promise<void>[] = [];
  constructor(
    private readonly url: string,
    private readonly concurrency = 12,
  ) {}

  start(): void {
    let i = 0;
    this.loops = Array.from({ length: this.concurrency }, async () => {
      while (this.running) {
        try {
          const r = await request(this.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              model: 'any',
              messages: [{ role: 'user', content: `question ${i++}` }],
              stream: true,
              stream_options: { include_usage: true },
            }),
          });
          const text = await r.body.text();
          if (r.statusCode !== 200) this.failed(`HTTP ${r.statusCode}`);
          else if (text.includes('data: {"error"')) this.failed('error event');
          else this.streams[r.headers['x-canary-variant'] === 'canary' ? 'canary' : 'baseline']++;
        } catch (err) {
          this.failed((err as { code?: string }).code ?? 'connection');
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

const llm = (version: string, flags: string[]) =>
  spawnModelServer('llm', ['--version', version, '--tokens', '10-40', '--tpot', '4ms', ...flags], {
    LOG_LEVEL: 'warn',
  }) as Promise<Server>;

function streamsLine(role: string, s: any): string {
  const st = s?.streams;
  if (!st) return `   ${role.padEnd(8)} no streams measured`;
  const cost = st.costPer1kAnswers == null ? '' : `, $${st.costPer1kAnswers.toFixed(4)} per 1,000 answers`;
  return `   ${role.padEnd(8)} ${s.version.padEnd(12)} first token p95 ${msf(st.ttft.p95).padStart(8)}   ${msf(st.tpot.p50)} a token   ${st.tokensPerAnswer?.toFixed(0) ?? '-'} tokens per answer${cost}`;
}

/**
 * The LLM act: an OpenAI-compatible streaming server behind the proxy. A canary whose first
 * token comes late is rolled back by the first-token rule although its whole answers take no
 * longer; a canary writing longer answers at the same speed is promoted, with its cost shown.
 */
export async function llmAct(
  n: number,
  ctx: { api: ApiClient; proxyUrl: string; name: string; models: ChildServer<unknown>[] },
): Promise<void> {
  const { api, name } = ctx;
  step(n, 'Fourth act: LLM streams. canary-mesh judges what a chat user feels: the first token, then the token rate');
  const base = await llm('llm-1', ['--ttft', '20ms']);
  const late = await llm('llm-2', ['--ttft', '300ms', '--tpot', '3ms']);
  const verbose = await llm('llm-3', ['--ttft', '20ms', '--length-scale', '2.5']);
  ctx.models.push(base, late, verbose);
  out(
    `   OpenAI-compatible streaming servers (canary model-server --model llm): llm-1 baseline at ${base.ready.url};` +
      ' llm-2 answers its first token 280 ms later but its tokens faster; llm-3 writes 2.5× longer answers at the same speed',
  );
  await api.call('POST', '/v1/deployments', {
    name,
    baseline: { version: 'llm-1', url: base.ready.url },
    pricing: { inputPer1M: 0.5, outputPer1M: 1.5 },
  });
  // Users arrive once the proxies serve the new deployment (its route reaches them within a second).
  await waitFor(
    `the proxy to route ${name}`,
    async () => {
      const r = await request(`${ctx.proxyUrl}/${name}/v1/models`);
      await r.body.dump();
      return r.statusCode === 200 ? true : null;
    },
    30_000,
  );
  const traffic = new ChatTraffic(`${ctx.proxyUrl}/${name}/v1/chat/completions`);
  traffic.start();
  try {
    await sleep(3000); // the baseline streams alone first: the latency and token-rate limits come from its own answers
    // The reference LLM servers have no cold start to wait out: no warm-up (policy.warmup).
    const policy = { interval: DEMO_INTERVAL, steps: [50, 100], minRequests: 50, warmup: null };
    const judged = async (version: string) => {
      await api.call('POST', `/v1/deployments/${name}/canary`, { version, policy });
      return waitFor(
        `the verdict on ${version}`,
        async () => {
          const d = await api.call('GET', `/v1/deployments/${name}`);
          return d.canary === null ? d : null;
        },
        180_000,
        async () =>
          `the last analysis said: ${((await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`)).latest?.reasons ?? ['none yet']).join('; ')}`,
      );
    };
    for (const [s, v] of [
      [late, 'llm-2'],
      [verbose, 'llm-3'],
    ] as const)
      await api.call('POST', `/v1/deployments/${name}/versions`, { version: v, url: s.ready.url });

    const t1 = Date.now();
    const d1 = await judged('llm-2');
    const a1 = (await api.call('GET', `/v1/deployments/${name}/analysis?limit=1`)).latest;
    const failed = a1.rules.filter((r: any) => r.status === 'fail').map((r: any) => `${r.rule}: ${r.summary}`);
    out(
      `   llm-2 ${d1.baseline.version === 'llm-1' ? color.red('rolled back') : 'was not rolled back'} after ${((Date.now() - t1) / 1000).toFixed(1)}s: ${failed.join('; ') || a1.reasons.join('; ')}`,
    );
    out(streamsLine('baseline', a1.baseline));
    out(streamsLine('canary', a1.canary));

    const t2 = Date.now();
    const d2 = await judged('llm-3');
    const history = (await api.call('GET', `/v1/deployments/${name}/analysis?limit=20`)).history;
    const a2 = history.find((a: any) => a.canary?.streams && a.baseline?.streams) ?? history[0];
    out(
      `   llm-3 ${d2.baseline.version === 'llm-3' ? color.green('promoted') : 'was not promoted'} after ${((Date.now() - t2) / 1000).toFixed(1)}s: longer answers are not slower ones (latency is judged on the first token)`,
    );
    out(streamsLine('baseline', a2.baseline));
    out(streamsLine('canary', a2.canary));
  } finally {
    await traffic.stop();
  }
  const why = [...traffic.failures].map(([w, k]) => `${k} ${w}`).join(', ');
  out(
    `   users got ${traffic.streams.baseline + traffic.streams.canary + traffic.streams.failed} streamed answers, ${traffic.streams.failed} of them failed${why ? ` (${why})` : ''}`,
  );
}

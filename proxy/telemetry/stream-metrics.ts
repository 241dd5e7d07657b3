import { Counter, Histogram, type Registry } from 'prom-client';
import type { Role } from '../contract/route-table.js';
import { STREAM_ENDS, type StreamEnd, type StreamSummary } from '../stream/meter.js';

/** TTFT buckets in seconds: LLM servers' first tokens come in 20 ms – a few seconds. */
const TTFT_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30];
/** TPOT buckets in seconds: 1–200 ms a token. */
const TPOT_BUCKETS_S = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5];

type Labels = 'deployment' | 'version' | 'role';
interface StreamChildren {
  ttft: { observe(v: number): void };
  tpot: { observe(v: number): void };
  output: { inc(n?: number): void };
  prompt: { inc(n?: number): void };
  ends: Record<StreamEnd, { inc(): void }>;
}

/** The proxy's Prometheus series of streamed answers (SSE, NDJSON), per deployment, version and role. */
export class StreamMetrics {
  private readonly ttft: Histogram<Labels>;
  private readonly tpot: Histogram<Labels>;
  private readonly tokens: Counter<Labels | 'kind'>;
  private readonly ends: Counter<Labels | 'end'>;
  private readonly children = new Map<string, StreamChildren>();

  constructor(registry: Registry) {
    const labelNames = ['deployment', 'version', 'role'] as const;
    this.ttft = new Histogram({
      name: 'canary_proxy_time_to_first_token_seconds',
      help: 'Streamed answers: time from the request to the first event carrying output (a token)',
      labelNames,
      buckets: TTFT_BUCKETS_S,
      registers: [registry],
    });
    this.tpot = new Histogram({
      name: 'canary_proxy_time_per_output_token_seconds',
      help: 'Streamed answers: (last token - first token) / (output tokens - 1)',
      labelNames,
      buckets: TPOT_BUCKETS_S,
      registers: [registry],
    });
    this.tokens = new Counter({
      name: 'canary_proxy_tokens_total',
      help: 'Tokens of streamed answers by kind (output, prompt): usage when reported, else output events',
      labelNames: [...labelNames, 'kind'],
      registers: [registry],
    });
    this.ends = new Counter({
      name: 'canary_proxy_streams_total',
      help: 'Streamed answers by how they ended: complete, error_event (an error inside the stream), cut (closed or stalled before its end), client_gone',
      labelNames: [...labelNames, 'end'],
      registers: [registry],
    });
  }

  observe(deployment: string, version: string, role: Role, s: StreamSummary): void {
    const c = this.series(deployment, version, role);
    c.ends[s.end].inc();
    if (s.end === 'client_gone') return;
    if (s.ttftMs !== null) c.ttft.observe(s.ttftMs / 1000);
    if (s.tpotMs !== null) c.tpot.observe(s.tpotMs / 1000);
    if (s.outputTokens > 0) c.output.inc(s.outputTokens);
    if (s.promptTokens) c.prompt.inc(s.promptTokens);
  }

  /** Created at 0 with a version's first stream, so increase() and rate() see every end from nothing. */
  private series(deployment: string, version: string, role: Role): StreamChildren {
    const key = `${deployment}\u0000${version}\u0000${role}`;
    let c = this.children.get(key);
    if (!c) {
      const ends = {} as StreamChildren['ends'];
      for (const end of STREAM_ENDS) {
        const child = this.ends.labels(deployment, version, role, end);
        child.inc(0);
        ends[end] = child;
      }
      const output = this.tokens.labels(deployment, version, role, 'output');
      const prompt = this.tokens.labels(deployment, version, role, 'prompt');
      output.inc(0);
      prompt.inc(0);
      c = {
        ttft: this.ttft.labels(deployment, version, role),
        tpot: this.tpot.labels(deployment, version, role),
        output,
        prompt,
        ends,
      };
      this.children.set(key, c);
    }
    return c;
  }
}

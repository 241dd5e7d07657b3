import { addValue, type Buckets, mergeInto, quantile } from './histogram.js';

/**
 * The streamed answers of one version in one second (or merged over a range): how they ended,
 * their tokens, and mergeable histograms of time to first token (TTFT), time per output token
 * (TPOT) and output tokens per answer — added across proxy replicas exactly as the latency
 * buckets are.
 */
export interface StreamCounts {
  streams: number;
  complete: number;
  errorEvents: number;
  cuts: number;
  clientGone: number;
  /** Streams that carried at least one token (they have a TTFT). */
  withTokens: number;
  outputTokens: number;
  promptTokens: number;
  /** Streams whose tokens were counted as output events (no usage reported). */
  estimated: number;
  /** Sum of the streams' decode phases (first to last token), whole milliseconds. */
  decodeMs: number;
  ttft: Buckets;
  tpot: Buckets;
  tokens: Buckets;
}

/** One stream as the proxy measured it (proxy/stream/meter.ts's summary, the fields stats keep). */
export interface MeasuredStream {
  end: 'complete' | 'error_event' | 'cut' | 'client_gone';
  ttftMs: number | null;
  tpotMs: number | null;
  outputTokens: number;
  tokensEstimated: boolean;
  promptTokens: number | null;
  decodeMs: number;
}

type CountField = Exclude<keyof StreamCounts, 'ttft' | 'tpot' | 'tokens'>;
/** Short Redis hash-field names of the counters (histograms: f<i> TTFT, g<i> TPOT, k<i> tokens). */
const REDIS_FIELDS: Readonly<Record<CountField, string>> = Object.freeze({
  streams: 'xs',
  complete: 'xc',
  errorEvents: 'xe',
  cuts: 'xx',
  clientGone: 'xg',
  withTokens: 'xt',
  outputTokens: 'xo',
  promptTokens: 'xp',
  estimated: 'xn',
  decodeMs: 'xd',
});
const COUNT_FIELDS = Object.keys(REDIS_FIELDS) as CountField[];
const BY_REDIS_FIELD = new Map(COUNT_FIELDS.map((f) => [REDIS_FIELDS[f], f] as [string, CountField]));
const HISTOGRAM_OF = { f: 'ttft', g: 'tpot', k: 'tokens' } as const;

export const noStreams = (): StreamCounts => ({
  streams: 0,
  complete: 0,
  errorEvents: 0,
  cuts: 0,
  clientGone: 0,
  withTokens: 0,
  outputTokens: 0,
  promptTokens: 0,
  estimated: 0,
  decodeMs: 0,
  ttft: new Map(),
  tpot: new Map(),
  tokens: new Map(),
});

const END_FIELD = { complete: 'complete', error_event: 'errorEvents', cut: 'cuts', client_gone: 'clientGone' } as const;

export function recordStream(c: StreamCounts, s: MeasuredStream): void {
  c.streams++;
  c[END_FIELD[s.end]]++;
  if (s.end === 'client_gone') return; // an abandoned answer says nothing of the model's speed
  if (s.ttftMs !== null) {
    c.withTokens++;
    addValue(c.ttft, s.ttftMs);
    addValue(c.tokens, Math.max(1, s.outputTokens));
  }
  if (s.tpotMs !== null) addValue(c.tpot, s.tpotMs);
  c.outputTokens += s.outputTokens;
  if (s.promptTokens !== null) c.promptTokens += s.promptTokens;
  if (s.tokensEstimated) c.estimated++;
  c.decodeMs += Math.round(s.decodeMs);
}

export function addStreams(into: StreamCounts, from: StreamCounts): void {
  for (const f of COUNT_FIELDS) into[f] += from[f];
  mergeInto(into.ttft, from.ttft);
  mergeInto(into.tpot, from.tpot);
  mergeInto(into.tokens, from.tokens);
}

export function copyStreams(c: StreamCounts): StreamCounts {
  return { ...c, ttft: new Map(c.ttft), tpot: new Map(c.tpot), tokens: new Map(c.tokens) };
}

/** The cell's stream fields as [field, n, …] for HINCRBY. */
export function streamRedisFields(c: StreamCounts, out: (string | number)[]): void {
  for (const f of COUNT_FIELDS) if (c[f]) out.push(REDIS_FIELDS[f], c[f]);
  for (const [i, n] of c.ttft) out.push(`f${i}`, n);
  for (const [i, n] of c.tpot) out.push(`g${i}`, n);
  for (const [i, n] of c.tokens) out.push(`k${i}`, n);
}

/** Adds one Redis hash field into `c`; false when the field is not a stream field. */
export function readStreamRedisField(c: StreamCounts, field: string, n: number): boolean {
  const counter = BY_REDIS_FIELD.get(field);
  if (counter) {
    c[counter] += n;
    return true;
  }
  const h = HISTOGRAM_OF[field[0] as keyof typeof HISTOGRAM_OF];
  if (!h) return false;
  const i = Number(field.slice(1));
  c[h].set(i, (c[h].get(i) ?? 0) + n);
  return true;
}

/** A version's streams over a range, as views and verdicts show them (milliseconds, tokens). */
export interface StreamStats {
  streams: number;
  ends: { complete: number; errorEvent: number; cut: number; clientGone: number };
  ttft: { p50: number | null; p95: number | null; p99: number | null };
  tpot: { p50: number | null; p95: number | null; p99: number | null };
  outputTokens: number;
  promptTokens: number;
  /** Output tokens per answer that carried any (mean) and its median. */
  tokensPerAnswer: number | null;
  tokensPerAnswerP50: number | null;
  /** Decode speed: tokens after the first per second of decoding. */
  tokensPerSecond: number | null;
  /** Share of streams whose tokens are counted events, not reported usage. */
  estimatedShare: number;
  /** Set by the control plane when the deployment has token prices (settings.pricing). */
  costPer1kAnswers?: number | null;
  /** The histograms, in memory only (the tpot and output-length rules read them). */
  histograms?: { ttft: Buckets; tpot: Buckets; tokens: Buckets };
}

const quantiles = (b: Buckets) => ({ p50: quantile(b, 0.5), p95: quantile(b, 0.95), p99: quantile(b, 0.99) });

export function streamStats(c: StreamCounts): StreamStats {
  const after = c.outputTokens - c.withTokens;
  return {
    streams: c.streams,
    ends: { complete: c.complete, errorEvent: c.errorEvents, cut: c.cuts, clientGone: c.clientGone },
    ttft: quantiles(c.ttft),
    tpot: quantiles(c.tpot),
    outputTokens: c.outputTokens,
    promptTokens: c.promptTokens,
    tokensPerAnswer: c.withTokens > 0 ? c.outputTokens / c.withTokens : null,
    tokensPerAnswerP50: quantile(c.tokens, 0.5),
    tokensPerSecond: c.decodeMs > 0 && after > 0 ? after / (c.decodeMs / 1000) : null,
    estimatedShare: c.streams > 0 ? c.estimated / c.streams : 0,
    histograms: { ttft: c.ttft, tpot: c.tpot, tokens: c.tokens },
  };
}

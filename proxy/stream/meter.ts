import { type Framing, framingOf, rawContentType } from './framing.js';
import { takePlainTokens } from './plain-token.js';
import { NdjsonParser, type SseEvent, SseParser } from './sse.js';

/**
 * How a stream ended: `complete` (its end marker: `[DONE]`, a finish_reason, Ollama's
 * `done: true`; for a stream of no known format, a clean close), `error_event` (the model
 * reported an error inside the stream after its 200), `cut` (the model closed or stalled
 * before its end), `client_gone` (the client left first: nobody's fault).
 */
export type StreamEnd = 'complete' | 'error_event' | 'cut' | 'client_gone';
export const STREAM_ENDS: readonly StreamEnd[] = ['complete', 'error_event', 'cut', 'client_gone'];

/** What one streamed answer was, as the user felt it. Times in milliseconds. */
export interface StreamSummary {
  /** How its events were told apart: SSE, NDJSON lines, or gRPC's length-prefixed messages. */
  framing: Framing | 'grpc';
  end: StreamEnd;
  /** Time to first token: from the request to the first event carrying output; null if none did. */
  ttftMs: number | null;
  /** Time per output token after the first: (last − first token) / (tokens − 1); null under two tokens. */
  tpotMs: number | null;
  /** Output tokens: `usage.completion_tokens` when reported, else output-bearing events. */
  outputTokens: number;
  /** True when outputTokens counts events (the stream carried no usage). */
  tokensEstimated: boolean;
  promptTokens: number | null;
  /** Time from the first to the last token (the decode phase). */
  decodeMs: number;
  /** Events or lines dropped for being over the size cap. */
  skipped: number;
}

/** Events (or NDJSON lines) above this are skipped and counted, never buffered: 1 MiB of text. */
export const MAX_EVENT_CHARS = 1 << 20;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown) => (typeof v === 'string' && v.length > 0) || (Array.isArray(v) && v.length > 0);

/**
 * Reads a copy of a streamed answer as it passes to the client (the bytes themselves are not
 * touched): parses its events incrementally and notes when output first and last arrived, how
 * many tokens, and how it ended. Recognises OpenAI chat and completions chunks (vLLM, TGI,
 * SGLang, llama.cpp, LiteLLM) and Ollama's NDJSON; any other stream's first event is its first
 * token and a clean close its end.
 */
export class StreamMeter {
  private readonly parser: SseParser | NdjsonParser;
  private firstAt: number | null = null;
  private lastAt = 0;
  private events = 0;
  private usageTokens: number | null = null;
  private promptTokens: number | null = null;
  /** A known LLM format was seen: its end marker is expected before the close. */
  private known = false;
  private ended: 'complete' | 'error_event' | null = null;
  private now = 0;

  constructor(
    readonly framing: Framing,
    private readonly startedAt: number,
    maxEventChars = MAX_EVENT_CHARS,
  ) {
    const onEvent = (e: SseEvent) => this.event(e);
    this.parser = framing === 'sse' ? new SseParser(maxEventChars, onEvent) : new NdjsonParser(maxEventChars, onEvent);
  }

  /** A meter for an answer whose raw headers say it is a stream; null for any other answer. */
  static forAnswer(status: number, rawHeaders: Buffer[], startedAt: number): StreamMeter | null {
    if (status < 200 || status >= 300) return null;
    const framing = framingOf(rawContentType(rawHeaders));
    return framing ? new StreamMeter(framing, startedAt) : null;
  }

  push(chunk: Buffer, now: number): void {
    this.now = now;
    // Once the stream is known to be OpenAI's, whole plain-token events are counted on bytes.
    const rest =
      this.known && this.parser instanceof SseParser && this.parser.idle ? takePlainTokens(chunk, this.token) : 0;
    if (rest < chunk.length) this.parser.push(rest === 0 ? chunk : chunk.subarray(rest));
  }

  private readonly token = () => this.output();

  /** The model reported an error inside the stream (the first end seen wins). */
  get errored(): boolean {
    return this.ended === 'error_event';
  }

  /**
   * The summary once the answer is over. `how`: the upstream closed the answer cleanly,
   * failed or stalled (`broken`), or the client went away.
   */
  finish(how: 'closed' | 'broken' | 'client_gone', now: number): StreamSummary {
    this.now = now;
    if (how === 'closed') this.parser.end();
    let end: StreamEnd;
    if (this.ended === 'error_event') end = 'error_event';
    else if (how === 'client_gone') end = 'client_gone';
    else if (this.ended === 'complete') end = 'complete';
    else end = how === 'closed' && !this.known ? 'complete' : 'cut';
    const tokens = this.usageTokens ?? this.events;
    const decodeMs = this.firstAt === null ? 0 : this.lastAt - this.firstAt;
    return {
      framing: this.framing,
      end,
      ttftMs: this.firstAt === null ? null : this.firstAt - this.startedAt,
      tpotMs: this.firstAt !== null && tokens >= 2 ? decodeMs / (tokens - 1) : null,
      outputTokens: tokens,
      tokensEstimated: this.usageTokens === null,
      promptTokens: this.promptTokens,
      decodeMs,
      skipped: this.parser.skipped,
    };
  }

  private output(): void {
    if (this.firstAt === null) this.firstAt = this.now;
    this.lastAt = this.now;
    this.events++;
  }

  private event(e: SseEvent): void {
    if (e.event === 'error') {
      this.ended ??= 'error_event';
      return;
    }
    const data = e.data;
    if (data === '[DONE]') {
      this.known = true;
      this.ended ??= 'complete';
      return;
    }
    let j: unknown;
    if (data.charCodeAt(0) === 123 /* { */) {
      try {
        j = JSON.parse(data);
      } catch {
        j = undefined;
      }
    }
    if (!isObject(j)) {
      if (!this.known) this.output(); // a stream of no known format: every event is output
      return;
    }
    if (j.error !== undefined && j.error !== null) {
      this.known = true;
      this.ended ??= 'error_event';
      return;
    }
    if (this.openai(j) || this.ollama(j)) return;
    if (!this.known) this.output();
  }

  /** OpenAI chat or completions chunk: true when it was one. */
  private openai(j: Json): boolean {
    const choices = j.choices;
    if (!Array.isArray(choices)) {
      if (isObject(j.usage) && j.object !== undefined) this.usage(j.usage);
      return false;
    }
    this.known = true;
    let carries = false;
    for (const c of choices) {
      if (!isObject(c)) continue;
      const d = c.delta;
      if (isObject(d) && (nonEmpty(d.content) || nonEmpty(d.reasoning_content) || nonEmpty(d.tool_calls)))
        carries = true;
      if (nonEmpty(c.text)) carries = true;
      if (c.finish_reason === 'error') this.ended ??= 'error_event';
      else if (typeof c.finish_reason === 'string' && c.finish_reason.length > 0) this.ended ??= 'complete';
    }
    if (carries) this.output();
    if (isObject(j.usage)) this.usage(j.usage);
    return true;
  }

  /** Ollama's /api/chat or /api/generate line: true when it was one. */
  private ollama(j: Json): boolean {
    if (typeof j.done !== 'boolean' || (j.message === undefined && j.response === undefined)) return false;
    this.known = true;
    if ((isObject(j.message) && nonEmpty(j.message.content)) || nonEmpty(j.response)) this.output();
    if (j.done) {
      this.ended ??= 'complete';
      if (typeof j.eval_count === 'number') this.usageTokens = j.eval_count;
      if (typeof j.prompt_eval_count === 'number') this.promptTokens = j.prompt_eval_count;
    }
    return true;
  }

  private usage(u: Json): void {
    if (typeof u.completion_tokens === 'number') this.usageTokens = u.completion_tokens;
    if (typeof u.prompt_tokens === 'number') this.promptTokens = u.prompt_tokens;
  }
}

import type { StreamEnd, StreamSummary } from '../stream/meter.js';

/** A gRPC message's prefix: a compressed flag (1 byte) and the message's length (4 bytes, big-endian). */
const PREFIX_BYTES = 5;

/**
 * Counts the messages of a gRPC answer as its DATA passes to the client (the bytes themselves
 * are not touched; only the 5-byte prefixes are read) and notes when the first and last message
 * began. A call answered with more than one message is a stream (server or bidi): its time to
 * first message is its TTFT and each message one output token, judged as a streamed LLM answer
 * is. A call with one message is judged by its latency, as unary calls are (the proxy cannot
 * tell a server stream that sent one message from a unary call, and need not: both made the
 * user wait the same).
 */
export class GrpcMessageMeter {
  messages = 0;
  private firstAt: number | null = null;
  private lastAt = 0;
  /** Bytes of the current message still to come (its payload), or of its prefix while it is read. */
  private remaining = 0;
  /** A prefix split across chunks, as it is read (allocated only then: the common prefix is read in place). */
  private prefix: Buffer | null = null;
  private prefixRead = 0;

  constructor(private readonly startedAt: number) {}

  push(chunk: Buffer, now: number): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        continue;
      }
      // A prefix, maybe split across chunks.
      if (this.prefixRead === 0 && chunk.length - i >= PREFIX_BYTES) {
        this.begin(chunk.readUInt32BE(i + 1), now);
        i += PREFIX_BYTES;
        continue;
      }
      const take = Math.min(PREFIX_BYTES - this.prefixRead, chunk.length - i);
      this.prefix ??= Buffer.alloc(PREFIX_BYTES);
      chunk.copy(this.prefix, this.prefixRead, i, i + take);
      this.prefixRead += take;
      i += take;
      if (this.prefixRead === PREFIX_BYTES) {
        this.prefixRead = 0;
        this.begin(this.prefix.readUInt32BE(1), now);
      }
    }
  }

  private begin(length: number, now: number): void {
    this.messages++;
    this.firstAt ??= now;
    this.lastAt = now;
    this.remaining = length;
  }

  /** What the stream was, for a call answered with more than one message; null for any other call. */
  summary(end: StreamEnd): StreamSummary | null {
    if (this.messages < 2 || this.firstAt === null) return null;
    const decodeMs = this.lastAt - this.firstAt;
    return {
      framing: 'grpc',
      end,
      ttftMs: this.firstAt - this.startedAt,
      tpotMs: decodeMs / (this.messages - 1),
      outputTokens: this.messages,
      tokensEstimated: true,
      promptTokens: null,
      decodeMs,
      skipped: 0,
    };
  }
}

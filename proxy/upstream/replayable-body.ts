import type { Readable, Writable } from 'node:stream';
import { BodyTooLargeError } from './body.js';

/**
 * A streamed request body that can be sent again from its start while it is small: every chunk
 * read from the client is kept (up to `keepBytes`) as it passes through, so when an HTTP/2
 * upstream refuses the stream unprocessed (REFUSED_STREAM, as a draining server does after
 * GOAWAY), or a canary fails a gRPC call before answering any message, the body is replayed on
 * a fresh stream — also while the client is still sending it. Once an answer is committed to
 * the client the copy is released. Chunks are written straight into the current upstream
 * stream (no stream in between: this is the gRPC hot path), with its backpressure: the client
 * is paused while the upstream does not drain. A body past `limitBytes` fails the send with
 * BodyTooLargeError and is read no further.
 */
export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private released = false;
  /** The client has sent the whole body. */
  ended = false;
  private failed: Error | null = null;
  private dest: Writable | null = null;
  private onError: ((err: Error) => void) | null = null;

  constructor(
    private readonly source: Readable,
    private readonly keepBytes: number,
    limitBytes = Number.POSITIVE_INFINITY,
  ) {
    source.on('data', (chunk: Buffer) => {
      if (this.failed) return;
      this.size += chunk.length;
      if (this.size > limitBytes) return this.fail(new BodyTooLargeError(limitBytes));
      if (this.size <= keepBytes && !this.released) this.chunks.push(chunk);
      else this.chunks.length = 0;
      const dest = this.dest;
      if (dest && !dest.write(chunk)) {
        source.pause();
        dest.once('drain', () => dest === this.dest && source.resume());
      }
    });
    source.once('end', () => {
      this.ended = true;
      this.dest?.end();
    });
    source.once('error', (err) => this.fail(err));
    // Nothing flows before the first send: no chunk is read that has nowhere to go.
    source.pause();
  }

  private fail(err: Error): void {
    this.failed = err;
    this.chunks.length = 0;
    this.source.pause();
    this.onError?.(err);
  }

  /** Whether the body so far is all kept: a send may start over. */
  get replayable(): boolean {
    return this.size <= this.keepBytes && !this.failed && !this.released;
  }

  /** No send will start over (an answer reached the client): the copy is dropped. */
  release(): void {
    this.released = true;
    this.chunks.length = 0;
  }

  /**
   * Sends the whole body, from its first byte, into `dest` and ends it; the destination before
   * it gets no more. `onError` hears of a failed read or a body over the limit.
   */
  sendTo(dest: Writable, onError: (err: Error) => void): void {
    this.dest = dest;
    this.onError = onError;
    if (this.failed) {
      const err = this.failed;
      process.nextTick(() => this.onError === onError && onError(err));
      return;
    }
    for (const c of this.chunks) dest.write(c);
    if (this.ended) dest.end();
    else this.source.resume();
  }
}

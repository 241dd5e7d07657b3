import { PassThrough, type Readable } from 'node:stream';

/**
 * A streamed request body that can be sent again from its start while it is small: every chunk
 * read from the client is kept (up to `maxBytes`) as it passes through, so when an HTTP/2
 * upstream refuses the stream unprocessed (REFUSED_STREAM, as a draining server does after
 * GOAWAY), or a canary fails a gRPC call before answering any message, the body is replayed on
 * a fresh stream — also while the client is still sending it. Once an answer is committed to
 * the client the copy is released. Backpressure is the current copy's: the client is paused
 * while it does not drain.
 */
export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private released = false;
  /** The client has sent the whole body. */
  ended = false;
  private failed: Error | null = null;
  private current: PassThrough | null = null;

  constructor(
    private readonly source: Readable,
    private readonly maxBytes: number,
  ) {
    source.on('data', (chunk: Buffer) => {
      this.size += chunk.length;
      if (this.size <= maxBytes && !this.released) this.chunks.push(chunk);
      else this.chunks.length = 0;
      const out = this.current;
      if (out && !out.write(chunk)) {
        source.pause();
        out.once('drain', () => out === this.current && source.resume());
      }
    });
    source.once('end', () => {
      this.ended = true;
      this.current?.end();
    });
    source.once('error', (err) => {
      this.failed = err;
      this.current?.destroy(err);
    });
  }

  /** Whether the body so far is all kept: a send may start over. */
  get replayable(): boolean {
    return this.size <= this.maxBytes && !this.failed && !this.released;
  }

  /** No send will start over (an answer reached the client): the copy is dropped. */
  release(): void {
    this.released = true;
    this.chunks.length = 0;
  }

  /** A fresh stream of the whole body, from its first byte; the one before it gets no more. */
  open(): Readable {
    this.current?.unpipe();
    const out = new PassThrough();
    this.current = out;
    for (const c of this.chunks) out.write(c);
    if (this.failed) process.nextTick(() => out.destroy(this.failed!));
    else if (this.ended) out.end();
    else this.source.resume();
    return out;
  }
}

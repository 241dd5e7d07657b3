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
/** Whoever sends the body now: told when reading it failed or it grew past the limit. */
export interface BodyOwner {
  bodyFailed(err: Error): void;
}

/** The body a client stream feeds (its listeners are module functions, shared by every call). */
const kBody = Symbol('replayable body');
type Source = Readable & { [kBody]?: ReplayableBody };

function onSourceData(this: Source, chunk: Buffer): void {
  this[kBody]!.received(chunk);
}
function onSourceEnd(this: Source): void {
  this[kBody]!.sourceEnded();
}
function onSourceError(this: Source, err: Error): void {
  this[kBody]!.fail(err);
}

export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private released = false;
  /** The client has sent the whole body. */
  ended = false;
  private failed: Error | null = null;
  private dest: Writable | null = null;
  private owner: BodyOwner | null = null;

  constructor(
    private readonly source: Source,
    private readonly keepBytes: number,
    private readonly limitBytes = Number.POSITIVE_INFINITY,
  ) {
    if (source[kBody]) throw new Error('a client stream feeds one ReplayableBody');
    source[kBody] = this;
    source.on('data', onSourceData);
    source.on('end', onSourceEnd);
    source.on('error', onSourceError);
    // Nothing flows before the first send: no chunk is read that has nowhere to go.
    source.pause();
  }

  received(chunk: Buffer): void {
    if (this.failed) return;
    this.size += chunk.length;
    if (this.size > this.limitBytes) {
      this.fail(new BodyTooLargeError(this.limitBytes));
      return;
    }
    if (this.size <= this.keepBytes && !this.released) this.chunks.push(chunk);
    else this.chunks.length = 0;
    const dest = this.dest;
    if (dest && !dest.write(chunk)) {
      const source = this.source;
      source.pause();
      dest.once('drain', () => dest === this.dest && source.resume());
    }
  }

  sourceEnded(): void {
    this.ended = true;
    this.dest?.end();
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.chunks.length = 0;
    this.source.pause();
    this.owner?.bodyFailed(err);
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
   * it gets no more. `owner` hears of a failed read or a body over the limit.
   */
  sendTo(dest: Writable, owner: BodyOwner): void {
    this.dest = dest;
    this.owner = owner;
    if (this.failed) {
      const err = this.failed;
      process.nextTick(() => this.owner === owner && owner.bodyFailed(err));
      return;
    }
    for (const c of this.chunks) dest.write(c);
    if (this.ended) dest.end();
    else this.source.resume();
  }
}

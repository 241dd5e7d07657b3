import { EventEmitter } from 'node:events';

export type CancelReason = 'client' | 'lost';

/**
 * Cancels an upstream request: the client went away, or (hedging) the other attempt won.
 * undici takes an EventEmitter as its `signal`; this one costs a fraction of an
 * AbortController (whose EventTarget machinery was ~10% of the proxy's CPU per request).
 */
export class Cancel extends EventEmitter {
  aborted = false;
  why: CancelReason | null = null;
  private error: (Error & { code: string }) | null = null;

  /** What undici rejects the request with; built only when asked (an Error's stack is not free). */
  get reason(): (Error & { code: string }) | null {
    if (!this.aborted) return null;
    this.error ??= Object.assign(
      new Error(
        `upstream request cancelled (${this.why === 'client' ? 'the client went away' : 'another attempt answered first'})`,
      ),
      { name: 'AbortError', code: 'UND_ERR_ABORTED' },
    );
    return this.error;
  }

  cancel(why: CancelReason): void {
    if (this.aborted) return;
    this.aborted = true;
    this.why = why;
    if (this.listenerCount('abort') > 0) this.emit('abort');
  }
}

import type { MessagePort, Worker } from 'node:worker_threads';

/**
 * Calls between the two threads of `canary up` (threaded.ts, control-plane-thread.ts): a call
 * is one message with an id, its answer one message with the same id. Values cross by
 * structured clone, so only plain data travels: route tables, stats cells, records.
 */
type Port = Pick<MessagePort | Worker, 'postMessage' | 'on' | 'off'>;

interface Call {
  rpc: 'call';
  id: number;
  method: string;
  args: unknown[];
}
interface Answer {
  rpc: 'answer';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export type Handlers = Record<string, (...args: never[]) => unknown>;

/** Answers the other thread's calls with `handlers`; a thrown error travels back as its message. */
export function serveCalls(port: Port, handlers: Handlers): void {
  port.on('message', (m: Call) => {
    if (m?.rpc !== 'call') return;
    const handler = handlers[m.method];
    const answer = (a: Omit<Answer, 'rpc' | 'id'>) => port.postMessage({ rpc: 'answer', id: m.id, ...a });
    if (!handler) {
      answer({ ok: false, error: `no such call: ${m.method}` });
      return;
    }
    Promise.resolve()
      .then(() => (handler as (...args: unknown[]) => unknown)(...m.args))
      .then(
        (value) => answer({ ok: true, value }),
        (err: unknown) => answer({ ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
  });
}

/** Makes calls to the other thread; when it is gone, every call pending or new fails at once. */
export class Caller {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private gone: Error | null = null;

  constructor(private readonly port: Port) {
    port.on('message', (m: Answer) => {
      if (m?.rpc !== 'answer') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error));
    });
  }

  call<T = void>(method: string, ...args: unknown[]): Promise<T> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.port.postMessage({ rpc: 'call', id, method, args } satisfies Call);
    });
  }

  /** The other thread ended: fail what waits, and everything after. */
  fail(err: Error): void {
    this.gone = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

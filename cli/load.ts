import { readFile } from 'node:fs/promises';
import autocannon from 'autocannon';
import { loadIris } from '../model-servers/iris.js';
import { color, table } from './format.js';

export interface LoadOptions {
  url: string;
  /** Requests per second across all connections (open rate); null: as fast as it goes. */
  rps: number | null;
  durationS: number;
  connections: number;
  method: string;
  /** The JSON body: a file's, or every Iris flower in turn; null: none (GET, HEAD). */
  body: { file: string } | { iris: true } | null;
  json: boolean;
  out: (line: string) => void;
  progress: (line: string) => void;
}

/** Latencies per variant (from each answer's x-canary-variant), with nearest-rank quantiles. */
class ByVariant {
  readonly ms = new Map<string, number[]>();
  /** Answers by status class: `4xx` (the request was refused: a wrong URL, method or body) and `5xx`. */
  readonly failed = { '4xx': new Map<string, number>(), '5xx': new Map<string, number>() };
  add(variant: string, ms: number, status: number): void {
    if (!this.ms.has(variant)) this.ms.set(variant, []);
    this.ms.get(variant)!.push(ms);
    const kind = status >= 500 ? '5xx' : status >= 400 ? '4xx' : null;
    if (kind) this.failed[kind].set(variant, (this.failed[kind].get(variant) ?? 0) + 1);
  }
  count(kind: '4xx' | '5xx', variant?: string): number {
    const m = this.failed[kind];
    return variant === undefined ? [...m.values()].reduce((a, v) => a + v, 0) : (m.get(variant) ?? 0);
  }
  quantile(variant: string, q: number): number | null {
    const xs = [...(this.ms.get(variant) ?? [])].sort((a, b) => a - b);
    return xs.length ? xs[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)] : null;
  }
}

const msf = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)}ms`);

/**
 * `canary load`: traffic for walkthroughs and load tests, on autocannon. A live line every
 * second (rate, failures, p50/p99 per variant from the x-canary-variant header) and a table at
 * the end. Failures are counted, never hidden: 4xx (refused requests) and 5xx apart, and socket
 * errors; `errors` is all of them, and the command exits 1 when it is not 0.
 */
export async function runLoad(o: LoadOptions): Promise<{
  requests: number;
  errors: number;
  clientErrors: number;
  serverErrors: number;
  socketErrors: number;
  byVariant: Record<
    string,
    { requests: number; clientErrors: number; serverErrors: number; p50: number | null; p99: number | null }
  >;
}> {
  const flowers = o.body && 'iris' in o.body ? loadIris() : null;
  const fileBody = o.body && 'file' in o.body ? await readFile(o.body.file, 'utf8') : null;
  let next = 0;
  // autocannon records a response's body and headers, then emits its latency, synchronously:
  // the variant noted in onResponse belongs to the latency reported right after it.
  let lastVariant = 'none';
  const stats = new ByVariant();
  let socketErrors = 0;
  // The tracker is an EventEmitter that is also a promise of the final result.
  const instance = autocannon({
    url: o.url,
    connections: o.connections,
    duration: o.durationS,
    ...(o.rps ? { overallRate: o.rps } : {}),
    requests: [
      {
        method: o.method,
        headers: o.body ? { 'content-type': 'application/json' } : {},
        ...(fileBody !== null ? { body: fileBody } : {}),
        ...(flowers
          ? {
              setupRequest: (req: Record<string, unknown>) => ({
                ...req,
                body: JSON.stringify({ features: flowers[next++ % flowers.length].features }),
              }),
            }
          : {}),
        onResponse: (_status: number, _body: string, _context: unknown, headers: Record<string, string>) => {
          lastVariant = headers['x-canary-variant'] ?? 'none';
        },
      },
    ] as never,
  }) as unknown as Promise<unknown> & { on(event: string, fn: (...args: never[]) => void): void };
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) =>
    stats.add(lastVariant, ms, status),
  );
  instance.on('reqError', () => {
    socketErrors++;
  });
  const started = Date.now();
  const line = () => {
    const total = [...stats.ms.values()].reduce((a, v) => a + v.length, 0);
    const secs = Math.max(1, (Date.now() - started) / 1000);
    const parts = [...stats.ms.keys()]
      .sort()
      .map((v) => `${v} p50 ${msf(stats.quantile(v, 0.5))} p99 ${msf(stats.quantile(v, 0.99))}`);
    const failed = `4xx ${stats.count('4xx')}  5xx ${stats.count('5xx')}${socketErrors ? `  socket ${socketErrors}` : ''}`;
    return `${String(Math.round(secs)).padStart(4)}s  ${(total / secs).toFixed(0).padStart(5)} rps  ${failed}  ${parts.join('  ')}`;
  };
  const ticker = setInterval(() => o.progress(line()), 1000);
  await instance;
  clearInterval(ticker);
  const byVariant = Object.fromEntries(
    [...stats.ms.keys()].sort().map((v) => [
      v,
      {
        requests: stats.ms.get(v)!.length,
        clientErrors: stats.count('4xx', v),
        serverErrors: stats.count('5xx', v),
        p50: stats.quantile(v, 0.5),
        p99: stats.quantile(v, 0.99),
      },
    ]),
  );
  const requests = Object.values(byVariant).reduce((a, v) => a + v.requests, 0);
  const clientErrors = stats.count('4xx'),
    serverErrors = stats.count('5xx');
  const errors = clientErrors + serverErrors + socketErrors;
  const summary = { requests, errors, clientErrors, serverErrors, socketErrors, byVariant };
  if (o.json) o.out(JSON.stringify(summary));
  else {
    const red = (n: number) => (n ? color.red(String(n)) : '0');
    o.out(
      table(
        ['VARIANT', 'REQUESTS', '4XX', '5XX', 'P50', 'P99'],
        Object.entries(byVariant).map(([v, s]) => [
          v,
          s.requests,
          red(s.clientErrors),
          red(s.serverErrors),
          msf(s.p50),
          msf(s.p99),
        ]),
      ),
    );
    o.out(
      `${requests} ${o.method} requests in ${o.durationS}s: ${errors} failed (${clientErrors} 4xx, ${serverErrors} 5xx, ${socketErrors} socket errors)`,
    );
    if (clientErrors > 0)
      o.out(`4xx: the model server refused the requests; check the URL, --method and --body (${o.method} ${o.url})`);
  }
  return summary;
}

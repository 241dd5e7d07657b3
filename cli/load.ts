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
  /** A JSON body to POST, or every Iris flower in turn; neither: GET. */
  body: { file: string } | { iris: true } | null;
  json: boolean;
  out: (line: string) => void;
  progress: (line: string) => void;
}

/** Latencies per variant (from each answer's x-canary-variant), with nearest-rank quantiles. */
class ByVariant {
  readonly ms = new Map<string, number[]>();
  readonly errors = new Map<string, number>();
  add(variant: string, ms: number, failed: boolean): void {
    if (!this.ms.has(variant)) this.ms.set(variant, []);
    this.ms.get(variant)!.push(ms);
    if (failed) this.errors.set(variant, (this.errors.get(variant) ?? 0) + 1);
  }
  quantile(variant: string, q: number): number | null {
    const xs = [...(this.ms.get(variant) ?? [])].sort((a, b) => a - b);
    return xs.length ? xs[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)] : null;
  }
}

const msf = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)}ms`);

/**
 * `canary load`: traffic for walkthroughs and load tests, on autocannon. A live line every
 * second (rate, errors, p50/p99 per variant from the x-canary-variant header) and a table at the
 * end. Failures (5xx, socket errors) are counted, never hidden.
 */
export async function runLoad(o: LoadOptions): Promise<{
  requests: number;
  errors: number;
  byVariant: Record<string, { requests: number; errors: number; p50: number | null; p99: number | null }>;
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
        method: o.body ? 'POST' : 'GET',
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
    stats.add(lastVariant, ms, status >= 500),
  );
  instance.on('reqError', () => {
    socketErrors++;
  });
  const started = Date.now();
  const line = () => {
    const total = [...stats.ms.values()].reduce((a, v) => a + v.length, 0);
    const errors = [...stats.errors.values()].reduce((a, v) => a + v, 0) + socketErrors;
    const secs = Math.max(1, (Date.now() - started) / 1000);
    const parts = [...stats.ms.keys()]
      .sort()
      .map((v) => `${v} p50 ${msf(stats.quantile(v, 0.5))} p99 ${msf(stats.quantile(v, 0.99))}`);
    return `${String(Math.round(secs)).padStart(4)}s  ${(total / secs).toFixed(0).padStart(5)} rps  errors ${errors}  ${parts.join('  ')}`;
  };
  const ticker = setInterval(() => o.progress(line()), 1000);
  await instance;
  clearInterval(ticker);
  const byVariant = Object.fromEntries(
    [...stats.ms.keys()].sort().map((v) => [
      v,
      {
        requests: stats.ms.get(v)!.length,
        errors: stats.errors.get(v) ?? 0,
        p50: stats.quantile(v, 0.5),
        p99: stats.quantile(v, 0.99),
      },
    ]),
  );
  const requests = Object.values(byVariant).reduce((a, v) => a + v.requests, 0);
  const errors = Object.values(byVariant).reduce((a, v) => a + v.errors, 0) + socketErrors;
  const summary = { requests, errors, byVariant };
  if (o.json) o.out(JSON.stringify(summary));
  else {
    o.out(
      table(
        ['VARIANT', 'REQUESTS', 'ERRORS', 'P50', 'P99'],
        Object.entries(byVariant).map(([v, s]) => [
          v,
          s.requests,
          s.errors ? color.red(String(s.errors)) : '0',
          msf(s.p50),
          msf(s.p99),
        ]),
      ),
    );
    o.out(
      `${requests} requests in ${o.durationS}s, ${errors} failed${socketErrors ? ` (${socketErrors} socket errors)` : ''}`,
    );
  }
  return summary;
}

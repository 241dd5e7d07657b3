import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { exactQuantile } from '../proxy/contract/histogram.js';

export interface OpenLoopResult {
  sent: number;
  ok: number;
  errors: number;
  p50: number;
  p99: number;
  achievedRps: number;
}

/**
 * An open-loop load: requests start on a fixed schedule (rate per second) whether or not
 * earlier ones finished, and latency counts from the scheduled start, so a stall shows up
 * in the numbers instead of silently slowing the generator (no coordinated omission).
 * Latencies are measured in microseconds, not autocannon's whole milliseconds.
 */
export async function openLoop(url: string, body: string, rate: number, durationMs: number): Promise<OpenLoopResult> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 256, pipelining: 1 });
  const latencies: number[] = [];
  let errors = 0,
    ok = 0;
  const total = Math.round((rate * durationMs) / 1000);
  const start = performance.now() + 50;
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    // From the scheduled start when the generator is late (no coordinated omission), from the
    // real start when a sub-millisecond wait was skipped (never a negative latency).
    const from = Math.min(due, performance.now());
    inflight.push(
      pool.request({ path: u.pathname, method: 'POST', body, headers: { 'content-type': 'application/json' } }).then(
        async (res) => {
          await res.body.dump();
          if (res.statusCode === 200) ok++;
          else errors++;
          latencies.push(performance.now() - from);
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(inflight);
  const elapsed = performance.now() - start;
  await pool.close();
  return {
    sent: total,
    ok,
    errors,
    p50: exactQuantile(latencies, 0.5) ?? NaN,
    p99: exactQuantile(latencies, 0.99) ?? NaN,
    achievedRps: (total * 1000) / elapsed,
  };
}

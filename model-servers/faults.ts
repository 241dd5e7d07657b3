import { parseDuration } from '../common/duration.js';

/**
 * Fault injection for tests and demos. All off by default.
 * - errorRate: fraction of /predict requests answered 500 at random;
 * - latencyMs + jitterMs: added delay, uniformly in [latency, latency + jitter];
 * - hangRate: fraction of /predict requests never answered (the socket stays open).
 */
export interface Faults {
  errorRate: number;
  latencyMs: number;
  jitterMs: number;
  hangRate: number;
}

export const NO_FAULTS: Faults = Object.freeze({ errorRate: 0, latencyMs: 0, jitterMs: 0, hangRate: 0 });

export class FaultConfigError extends Error {
  readonly code = 'BAD_FAULT_CONFIG';
}

function rate(v: unknown, name: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new FaultConfigError(`${name}: expected a fraction from 0 to 1, got ${JSON.stringify(v)}`);
  return n;
}

export function parseFaults(input: Partial<Record<keyof Faults, unknown>>): Faults {
  const d = (v: unknown, name: string) => {
    try {
      return v === undefined || v === '' ? 0 : parseDuration(v, name);
    } catch (e) {
      throw new FaultConfigError((e as Error).message);
    }
  };
  return {
    errorRate: input.errorRate === undefined || input.errorRate === '' ? 0 : rate(input.errorRate, 'error rate'),
    latencyMs: d(input.latencyMs, 'latency'),
    jitterMs: d(input.jitterMs, 'jitter'),
    hangRate: input.hangRate === undefined || input.hangRate === '' ? 0 : rate(input.hangRate, 'hang rate'),
  };
}

/** Reads CANARY_FAULT_* variables (ERROR_RATE, LATENCY, JITTER, HANG_RATE). */
export function faultsFromEnv(env: Record<string, string | undefined> = process.env): Faults {
  return parseFaults({
    errorRate: env.CANARY_FAULT_ERROR_RATE,
    latencyMs: env.CANARY_FAULT_LATENCY,
    jitterMs: env.CANARY_FAULT_JITTER,
    hangRate: env.CANARY_FAULT_HANG_RATE,
  });
}

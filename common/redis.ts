import { Redis } from 'ioredis';

/** Reconnect quickly at first, then every 2 s at most, forever: Redis coming back is normal. */
export const redisRetryStrategy = (attempt: number): number => Math.min(50 * attempt, 2000);

/** A Redis client for stats writes: fails fast while Redis is down (the flusher retries). */
export function statsRedis(url: string): Redis {
  const r = new Redis(url, {
    retryStrategy: redisRetryStrategy,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectionName: 'canary-proxy-stats',
  });
  r.on('error', () => {}); // reported through flush failures and the route source status
  return r;
}

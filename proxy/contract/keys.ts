/**
 * Every Redis key and channel canary-mesh uses, in one place. The proxy owns this layout;
 * the control plane writes into it. Documented in the README ("Redis key layout").
 */
export const DEFAULT_PREFIX = 'canary:';

export function redisKeys(prefix = DEFAULT_PREFIX) {
  return {
    /** String: the whole route table as JSON (RouteTable). */
    routes: `${prefix}routes`,
    /** Pub/sub channel: a message (the new table version) whenever `routes` changes. */
    routesChannel: `${prefix}routes:changed`,
    /**
     * Hash per (deployment, version, second): count, model_errors, client_errors and
     * latency histogram buckets `h<index>`, all HINCRBY so replicas merge exactly.
     */
    stats: (deployment: string, version: string, epochSecond: number) =>
      `${prefix}stats:{${deployment}}:${version}:${epochSecond}`,
    /** List of JSON disagreement examples of a shadowed canary, newest first, capped (LTRIM). */
    examples: (deployment: string, version: string) => `${prefix}examples:{${deployment}}:${version}`,
    /** String per applied stats flush (its id), kept as long as the cells: a resent flush is not counted twice. */
    flush: (id: string) => `${prefix}flush:${id}`,
    /** List of JSON trips (proxy/split/trips.ts): proxies LPUSH, the control plane drains it. */
    trips: `${prefix}trips`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;

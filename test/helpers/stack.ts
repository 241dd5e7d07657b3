import { request } from 'undici';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { type RunningStack, startStack } from '../../control-plane/main.js';
import { freshSchema, REDIS_URL, silent, testPrefix } from './servers.js';

/**
 * The whole stack for an end-to-end test: control plane and proxy on port 0, real PostgreSQL
 * (a fresh schema) and Redis (a fresh key prefix), analysing every 100 ms and flushing stats
 * every 200 ms. `env` adds or overrides control-plane settings. shutdown() stops it and drops the schema.
 */
export type WholeStack = RunningStack & { shutdown(): Promise<void> };

export async function startWholeStack(env: Record<string, string> = {}): Promise<WholeStack> {
  const schema = await freshSchema();
  const stack = await startStack(
    loadControlPlaneConfig({
      DATABASE_URL: schema.url,
      REDIS_URL,
      CANARY_REDIS_PREFIX: testPrefix(),
      CANARY_API_PORT: '0',
      CANARY_XDS_PORT: '0',
      CANARY_ANALYSIS_TICK: '100ms',
      CANARY_LEADER_LEASE: '1s',
      ...env,
    }),
    loadProxyConfig({
      CANARY_PROXY_PORT: '0',
      CANARY_ADMIN_PORT: '0',
      CANARY_PROXY_HOST: '127.0.0.1',
      CANARY_STATS_FLUSH: '200ms',
    }),
    { logger: silent },
  );
  return Object.assign(stack, {
    shutdown: async () => {
      await stack.close();
      await schema.drop();
    },
  });
}

/** Iris predictions POSTed through the proxy by `concurrency` clients until stopped; every status kept. */
export function irisTraffic(url: string, concurrency = 4) {
  const statuses: number[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      const r = await request(url, {
        method: 'POST',
        body: JSON.stringify({
          features: { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
        }),
        headers: { 'content-type': 'application/json' },
      }).catch(() => null);
      statuses.push(r?.statusCode ?? -1);
      await r?.body.dump();
    }
  });
  return {
    statuses,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

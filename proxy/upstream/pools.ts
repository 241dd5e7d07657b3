import { Pool } from 'undici';
import { type AddressPolicy, policedConnector } from '../../common/address-policy.js';

export interface PoolOptions {
  /** Sockets per upstream; keep-alive reuses them. */
  connections: number;
  connectTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Checked at every connect, after the name resolves (it may resolve elsewhere than at registration). */
  policy?: AddressPolicy;
}

/** One keep-alive undici Pool per upstream origin, kept in step with the route table. */
export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly opts: PoolOptions) {}

  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: this.opts.connections,
        connectTimeout: this.opts.connectTimeoutMs,
        keepAliveTimeout: this.opts.keepAliveTimeoutMs,
        pipelining: 1,
        ...(this.opts.policy ? { connect: policedConnector(this.opts.policy, this.opts.connectTimeoutMs) } : {}),
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** Closes pools whose origin left the table; in-flight requests on them finish first. */
  retain(origins: Set<string>): void {
    for (const [origin, pool] of this.pools) {
      if (!origins.has(origin)) {
        this.pools.delete(origin);
        void pool.close().catch(() => pool.destroy());
      }
    }
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }
}

import type { Redis } from 'ioredis';
import { redisKeys } from '../../proxy/contract/keys.js';
import type { RouteTable } from '../../proxy/contract/route-table.js';
import type { StaticRouteSource } from '../../proxy/main.js';

/**
 * Where the control plane programs data planes. Publishing is idempotent: the same table
 * twice changes nothing, which is what lets the reconcile loop republish freely.
 */
export interface RoutePublisher {
  publish(table: RouteTable): Promise<void>;
}

/** Proxies in other processes: SET the table and PUBLISH its version in one MULTI. */
export class RedisRoutePublisher implements RoutePublisher {
  private readonly keys;
  private lastPublished: string | null = null;
  constructor(
    private readonly redis: Redis,
    prefix?: string,
  ) {
    this.keys = redisKeys(prefix);
  }

  async publish(table: RouteTable): Promise<void> {
    const json = JSON.stringify(table);
    // A reconcile that finds Redis already right sends nothing (but Redis may have been
    // restarted empty, so compare with what Redis holds, not with what we sent last).
    if (json === this.lastPublished && (await this.redis.get(this.keys.routes)) === json) return;
    const res = await this.redis
      .multi()
      .set(this.keys.routes, json)
      .publish(this.keys.routesChannel, String(table.version))
      .exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0];
    this.lastPublished = json;
  }
}

/** The proxy in this same process (`canary up` without Redis). */
export class InProcessRoutePublisher implements RoutePublisher {
  constructor(private readonly source: StaticRouteSource) {}
  async publish(table: RouteTable): Promise<void> {
    this.source.set(table);
  }
}

/** Several data planes at once (e.g. Redis for proxies and xDS for Envoy). */
export class FanOutPublisher implements RoutePublisher {
  constructor(private readonly targets: RoutePublisher[]) {}
  async publish(table: RouteTable): Promise<void> {
    const results = await Promise.allSettled(this.targets.map((t) => t.publish(table)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

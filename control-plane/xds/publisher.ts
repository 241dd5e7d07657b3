import type { Logger } from '../../common/logger.js';
import type { RouteTable } from '../../proxy/contract/route-table.js';
import type { RoutePublisher } from '../publish/route-publisher.js';
import { ALL_NODES, type SnapshotCache } from './cache.js';
import { buildSnapshot, checkConsistency, type XdsOptions } from './snapshot.js';

/** Programs Envoy and proxyless gRPC clients: route table → snapshot → cache (→ streams). */
export class XdsRoutePublisher implements RoutePublisher {
  constructor(
    private readonly cache: SnapshotCache,
    private readonly opts: XdsOptions,
    private readonly logger: Logger,
  ) {}

  async publish(table: RouteTable): Promise<void> {
    const snapshot = buildSnapshot(table, this.opts);
    const problems = checkConsistency(snapshot);
    if (problems.length) {
      // An inconsistent snapshot never leaves: clients keep the last consistent one.
      this.logger.error({ problems }, 'xds snapshot inconsistent; not published');
      throw new Error(`inconsistent xds snapshot: ${problems.join('; ')}`);
    }
    this.cache.set(ALL_NODES, snapshot);
  }
}

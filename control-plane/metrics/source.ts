import type { StatsStore, VersionStats } from '../../proxy/contract/stats.js';

/**
 * Where the analysis reads a version's stats. One interface, a file per provider:
 * the proxies' windowed stats (default) and, for Envoy data planes, Prometheus.
 * A failure throws; the analysis turns it into an `error` verdict and holds.
 */
export interface MetricsSource {
  readonly name: string;
  versionStats(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats>;
}

/** The proxies' own windowed stats, merged across replicas by the stats store. */
export class ProxyStatsSource implements MetricsSource {
  readonly name = 'proxy';
  constructor(
    private readonly store: StatsStore,
    private readonly timeoutMs = 5000,
  ) {}

  async versionStats(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`stats read timed out after ${this.timeoutMs}ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([this.store.read(deployment, version, fromMs, toMs), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

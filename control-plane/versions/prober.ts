import { request } from 'undici';
import type { Logger } from '../../common/logger.js';
import type { ControlStore } from '../state/store.js';
import { probeGrpcHealth } from './grpc-probe.js';

/** How many earlier serving versions per deployment are kept probed and ready for rollback. */
export const READY_PREVIOUS_VERSIONS = 3;

/** Where model servers answer health checks: canary-mesh's own, common servers', KServe v2 / Triton, SageMaker. */
export const USUAL_HEALTH_PATHS = ['/healthz', '/health', '/v2/health/ready', '/ping'];

/**
 * Probes the serving, canary and the newest retired versions, so a person rolling back can
 * see which model servers answer. Each deployment's `health.path` says where (null: no probe);
 * by default the usual health paths are tried, and a server answering any of them below 500
 * counts as up — plenty of model servers (`python3 -m http.server`, a Flask app) have none. A
 * failing probe is shown and warned about; it never blocks a rollback. Results land on the
 * version rows.
 */
export class VersionProber {
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly store: ControlStore,
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly timeoutMs = 2000,
  ) {}

  start(): void {
    void this.probeAll();
    this.timer = setInterval(() => void this.probeAll(), this.intervalMs);
    this.timer.unref();
  }

  async probeAll(): Promise<void> {
    try {
      const [versions, deployments] = await Promise.all([
        this.store.versionsToProbe(READY_PREVIOUS_VERSIONS),
        this.store.listDeployments(),
      ]);
      const pathOf = new Map(deployments.map((d) => [d.name, d.settings.healthPath]));
      await Promise.all(
        versions.map(async (v) => {
          const path = pathOf.get(v.deployment);
          if (path === null) return; // no probe for this deployment: health unknown, nothing claimed
          const { healthy, error } = await this.probe(v.url, path);
          if (v.healthy !== healthy)
            this.logger[healthy ? 'info' : 'warn'](
              { deployment: v.deployment, version: v.version, error },
              healthy ? 'version healthy' : 'version unhealthy',
            );
          await this.store.recordProbe(v.deployment, v.version, healthy, error);
        }),
      );
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'version probes failed');
    }
  }

  /** One version: its path (the URL's prefix kept), or the usual ones in turn. */
  private async probe(url: string, path: string | undefined): Promise<{ healthy: boolean; error: string | null }> {
    if (url.startsWith('h2c:')) return probeGrpcHealth(url, this.timeoutMs);
    const paths = path === undefined ? USUAL_HEALTH_PATHS : [path];
    const answers: string[] = [];
    let up = false;
    for (const p of paths) {
      try {
        const res = await request(url.replace(/\/$/, '') + p, {
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) return { healthy: true, error: null };
        answers.push(`GET ${p} answered ${res.statusCode}`);
        if (res.statusCode < 500) up = true;
      } catch (err) {
        return { healthy: false, error: `GET ${p}: ${(err as Error).message}` };
      }
    }
    // A server that answers, without a health endpoint: up, unless it was told where to look.
    if (up && path === undefined) return { healthy: true, error: null };
    return { healthy: false, error: answers.join('; ') };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

import { request } from 'undici';
import type { Logger } from '../../common/logger.js';
import type { ControlStore } from '../state/store.js';

/** How many earlier serving versions per deployment are kept probed and ready for rollback. */
export const READY_PREVIOUS_VERSIONS = 3;

/**
 * Probes `GET /healthz` of the serving, canary and the newest retired versions, so a
 * rollback never goes to a model server that is gone. Results land on the version rows.
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
      const versions = await this.store.versionsToProbe(READY_PREVIOUS_VERSIONS);
      await Promise.all(
        versions.map(async (v) => {
          let healthy = false;
          let error: string | null = null;
          try {
            const res = await request(new URL('/healthz', v.url), {
              headersTimeout: this.timeoutMs,
              bodyTimeout: this.timeoutMs,
            });
            await res.body.dump();
            healthy = res.statusCode === 200;
            if (!healthy) error = `GET /healthz answered ${res.statusCode}`;
          } catch (err) {
            error = (err as Error).message;
          }
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

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

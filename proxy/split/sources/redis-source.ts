import { Redis } from 'ioredis';
import type { Logger } from '../../../common/logger.js';
import { redisRetryStrategy } from '../../../common/redis.js';
import { redisKeys } from '../../contract/keys.js';
import { parseRouteTable, type RouteTable } from '../../contract/route-table.js';
import type { RouteSource, RouteSourceStatus } from './route-source.js';

export interface RedisRouteSourceOptions {
  url: string;
  prefix?: string;
  /** Periodic re-read that repairs a missed pub/sub message. */
  resyncMs: number;
  logger: Logger;
}

/**
 * The route table as a Redis value, applied on pub/sub announcements and re-read
 * periodically. Reads happen only on those events, never per request. While Redis is
 * unreachable the last table stays in force and status().connected is false.
 */
export class RedisRouteSource implements RouteSource {
  private readonly keys;
  private cmd: Redis | null = null;
  private sub: Redis | null = null;
  private timer: NodeJS.Timeout | null = null;
  private onTable: ((t: RouteTable) => void) | null = null;
  private connected = false;
  private lastSyncAt: number | null = null;
  private lastError: string | null = null;
  private lastRaw: string | null = null;
  onConnectivity?: (connected: boolean) => void;

  constructor(private readonly opts: RedisRouteSourceOptions) {
    this.keys = redisKeys(opts.prefix);
  }

  async start(onTable: (t: RouteTable) => void): Promise<void> {
    this.onTable = onTable;
    const common = { retryStrategy: redisRetryStrategy, lazyConnect: true, maxRetriesPerRequest: 1 };
    // Commands fail fast while disconnected instead of queueing: the resync timer retries.
    this.cmd = new Redis(this.opts.url, {
      ...common,
      enableOfflineQueue: false,
      connectionName: 'canary-proxy-routes',
    });
    this.sub = new Redis(this.opts.url, { ...common, connectionName: 'canary-proxy-routes-sub' });
    for (const c of [this.cmd, this.sub])
      c.on('error', (err: Error) => {
        this.lastError = err.message;
      });
    this.cmd.on('ready', () => {
      this.setConnected(true);
      void this.sync();
    });
    this.cmd.on('close', () => this.setConnected(false));
    this.sub.on('message', () => void this.sync());
    // ioredis re-subscribes by itself after a reconnect; the 'ready' re-read covers the gap.
    await Promise.allSettled([
      this.cmd.connect(),
      this.sub.connect().then(() => this.sub!.subscribe(this.keys.routesChannel)),
    ]);
    await this.sync();
    this.timer = setInterval(() => void this.sync(), this.opts.resyncMs);
    this.timer.unref();
  }

  private setConnected(up: boolean): void {
    if (this.connected === up) return;
    this.connected = up;
    this.opts.logger[up ? 'info' : 'warn'](
      { routeSource: 'redis', connected: up },
      up ? 'route source connected' : 'route source lost: serving the last known route table',
    );
    this.onConnectivity?.(up);
  }

  /** Reads the table; a failure or an invalid table leaves the current one in force. */
  async sync(): Promise<void> {
    if (this.cmd?.status !== 'ready') return;
    try {
      const raw = await this.cmd.get(this.keys.routes);
      this.lastSyncAt = Date.now();
      this.lastError = null;
      if (raw === null || raw === this.lastRaw) return;
      const table = parseRouteTable(JSON.parse(raw));
      this.lastRaw = raw;
      this.onTable?.(table);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.opts.logger.error({ err }, 'route table not applied: keeping the last good one');
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.onTable = null;
    await Promise.allSettled([this.cmd?.quit(), this.sub?.quit()]);
    this.cmd?.disconnect();
    this.sub?.disconnect();
  }

  status(): RouteSourceStatus {
    return { kind: 'redis', connected: this.connected, lastSyncAt: this.lastSyncAt, lastError: this.lastError };
  }
}

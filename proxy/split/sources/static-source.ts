import { readFile } from 'node:fs/promises';
import { parseRouteTable, type RouteTable } from '../../contract/route-table.js';
import type { RouteSource, RouteSourceStatus } from './route-source.js';

/**
 * A table given at start (from a file or JSON), or set in-process: used by benches, tests
 * and the embedded single-process mode, where the control plane calls `set()` directly.
 */
export class StaticRouteSource implements RouteSource {
  private onTable: ((t: RouteTable) => void) | null = null;
  private table: RouteTable;
  private lastSyncAt: number | null = null;

  constructor(table: unknown = { version: 0, deployments: {} }) {
    this.table = parseRouteTable(table);
  }

  static async fromFile(path: string): Promise<StaticRouteSource> {
    return new StaticRouteSource(JSON.parse(await readFile(path, 'utf8')));
  }

  async start(onTable: (t: RouteTable) => void): Promise<void> {
    this.onTable = onTable;
    this.lastSyncAt = Date.now();
    onTable(this.table);
  }

  /** Validates and applies a new table at once. */
  set(table: unknown): void {
    this.table = parseRouteTable(table);
    this.lastSyncAt = Date.now();
    this.onTable?.(this.table);
  }

  async stop(): Promise<void> {
    this.onTable = null;
  }

  status(): RouteSourceStatus {
    return { kind: 'static', connected: true, lastSyncAt: this.lastSyncAt, lastError: null };
  }
}

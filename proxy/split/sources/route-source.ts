import type { RouteTable } from '../../contract/route-table.js';

export interface RouteSourceStatus {
  kind: 'static' | 'redis';
  /** false while the source is unreachable: the proxy keeps the last good table. */
  connected: boolean;
  /** Epoch ms of the last successful read (or set), null if never. */
  lastSyncAt: number | null;
  lastError: string | null;
}

/**
 * Where a proxy's route table comes from. A source calls `onTable` with every new valid
 * table; it never makes a request wait, and a failing source never clears the table.
 */
export interface RouteSource {
  start(onTable: (table: RouteTable) => void): Promise<void>;
  stop(): Promise<void>;
  status(): RouteSourceStatus;
  /** Called when the connectivity seen by status() changes (for metrics). */
  onConnectivity?: (connected: boolean) => void;
}

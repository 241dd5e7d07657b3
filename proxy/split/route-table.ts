/**
 * The data plane's input contract: what every proxy needs to route a request. The control
 * plane imports these types and writes tables in exactly this shape (see proxy/keys.ts for
 * where they live in Redis). Nothing here knows about the control plane.
 */
export type Role = 'baseline' | 'canary';

export interface Upstream {
  /** Model version served at this upstream, e.g. "v2". Stats are keyed by it. */
  version: string;
  /** Origin of the model server, e.g. "http://10.0.0.5:8000" (path ignored). */
  url: string;
}

export interface CanaryUpstream extends Upstream {
  /** Percent of traffic (0–100, decimals allowed down to 0.01) sent to the canary. */
  weight: number;
}

export interface DeploymentRoute {
  name: string;
  baseline: Upstream;
  /** null when no canary runs: everything goes to the baseline. */
  canary: CanaryUpstream | null;
  /**
   * Retry a failed canary request (5xx, connection error, timeout) once on the baseline so
   * the user gets the baseline's answer. The failure still counts against the canary.
   * Default: true.
   */
  retryCanaryOnBaseline?: boolean;
}

export interface RouteTable {
  /** Increases with every change the control plane publishes; the proxy exposes it. */
  version: number;
  deployments: Record<string, DeploymentRoute>;
}

export const EMPTY_TABLE: RouteTable = Object.freeze({ version: 0, deployments: {} }) as RouteTable;

export class RouteTableError extends Error {
  readonly code = 'BAD_ROUTE_TABLE';
}

function checkUpstream(u: unknown, where: string): Upstream {
  if (!u || typeof u !== 'object') throw new RouteTableError(`${where}: expected an object`);
  const { version, url } = u as Record<string, unknown>;
  if (typeof version !== 'string' || version === '') throw new RouteTableError(`${where}.version: expected a non-empty string`);
  if (typeof url !== 'string') throw new RouteTableError(`${where}.url: expected a string`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RouteTableError(`${where}.url: not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new RouteTableError(`${where}.url: only http and https upstreams are supported`);
  }
  return { version, url: parsed.origin };
}

/**
 * Validates an untrusted table (from Redis or a file) and returns a normalised copy.
 * A proxy never applies a table that fails this; it keeps the last good one.
 */
export function parseRouteTable(input: unknown): RouteTable {
  if (!input || typeof input !== 'object') throw new RouteTableError('route table: expected an object');
  const raw = input as Record<string, unknown>;
  const version = raw.version ?? 0;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    throw new RouteTableError('route table.version: expected a non-negative integer');
  }
  const deps = raw.deployments ?? {};
  if (typeof deps !== 'object' || Array.isArray(deps)) throw new RouteTableError('route table.deployments: expected an object keyed by deployment name');
  const deployments: Record<string, DeploymentRoute> = {};
  for (const [name, d] of Object.entries(deps as Record<string, unknown>)) {
    const where = `deployments.${name}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) throw new RouteTableError(`${where}: invalid deployment name`);
    if (!d || typeof d !== 'object') throw new RouteTableError(`${where}: expected an object`);
    const dr = d as Record<string, unknown>;
    const baseline = checkUpstream(dr.baseline, `${where}.baseline`);
    let canary: CanaryUpstream | null = null;
    if (dr.canary != null) {
      const c = checkUpstream(dr.canary, `${where}.canary`);
      const weight = (dr.canary as Record<string, unknown>).weight;
      if (typeof weight !== 'number' || !(weight >= 0 && weight <= 100)) {
        throw new RouteTableError(`${where}.canary.weight: expected a number from 0 to 100`);
      }
      canary = { ...c, weight };
    }
    const retry = dr.retryCanaryOnBaseline;
    if (retry !== undefined && typeof retry !== 'boolean') throw new RouteTableError(`${where}.retryCanaryOnBaseline: expected a boolean`);
    deployments[name] = { name, baseline, canary, retryCanaryOnBaseline: retry ?? true };
  }
  return { version, deployments };
}

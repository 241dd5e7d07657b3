import {
  DEFAULT_MAX_PROXY_LAG_MS,
  type RouteSettings,
  type RouteTable,
  type ShadowRoute,
} from '../../proxy/contract/route-table.js';
import type { DeploymentSettings } from '../model/settings.js';
import type { CanaryRow, DeploymentRow } from '../state/types.js';

/**
 * The route table the proxies need, built from stored rows: pure, so what is published is a
 * function of the state alone (the same rows always give the same table), and the stores
 * know nothing of the data plane's contract.
 */
export function buildRouteTable(rows: { version: number; deployments: DeploymentRow[] }): RouteTable {
  const table: RouteTable = { version: rows.version, deployments: {} };
  for (const d of rows.deployments) {
    table.deployments[d.name] = {
      name: d.name,
      baseline: { version: d.baselineVersion, url: d.baselineUrl },
      canary: d.canary ? { version: d.canary.version, url: d.canary.url, weight: d.canary.weight } : null,
      retryCanaryOnBaseline: d.retryCanaryOnBaseline,
      settings: routeSettings(d.settings),
      ...(d.canary ? shadowRoute(d.canary) : {}),
    };
  }
  return table;
}

/** A canary in its shadow phase: what the proxies mirror and how they compare. */
function shadowRoute(c: CanaryRow): { shadow: ShadowRoute } | Record<string, never> {
  const s = c.policy.shadow;
  if (c.state.phase !== 'shadow' || !s) return {};
  return {
    shadow: {
      percent: s.percent,
      noisePercent: s.noisePercent,
      timeoutMs: s.timeoutMs,
      maxConcurrency: s.maxConcurrency,
      maxProxyLagMs: s.maxProxyLagMs ?? DEFAULT_MAX_PROXY_LAG_MS,
      compare: s.compare,
    },
  };
}

/** What the proxies apply: the settings without the control plane's own (the version probe, prices). */
function routeSettings(s: DeploymentSettings): RouteSettings {
  const { healthPath: _probe, pricing: _pricing, ...route } = s;
  return route;
}

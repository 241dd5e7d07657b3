import type { IncomingHttpHeaders } from 'node:http';
import type { DeploymentRoute, Role, Upstream } from '../contract/route-table.js';
import { keyGroupOf, pickVariant } from '../split/splitter.js';

/** Which variant serves a request, and whether it is a routing draw the analysis may count. */
export interface RouteDecision {
  role: Role;
  upstream: Upstream;
  /** A draw of the split: its outcome goes into the stats the analysis reads. */
  analysed: boolean;
  /** A tester picked the variant (`x-canary-force`): not analysed, retried, hedged or logged. */
  forced: boolean;
  /** A canary draw sent to the baseline instead, and why. */
  diverted: 'tripped' | 'in_flight_cap' | null;
  /** Routed by a sticky key: the key's group, in which the stats count its user's requests. */
  keyGroup?: number;
}

/** What the proxy knows, at the moment of the request, about the deployment's canary. */
export interface CanaryState {
  /** The proxy's fast trip took this canary version off live traffic. */
  tripped(deployment: string, version: string): boolean;
  /** Canary requests in flight now, and how many may be: beyond, they would queue behind hung ones. */
  inFlight(deployment: string): number;
  inFlightCap: number;
}

/**
 * The route decision, pure: the split's pick (by the sticky `key` request/sticky-key.ts chose,
 * if any), then the overrides in order — a tester's forced variant (where the deployment allows
 * it), a tripped canary, a canary with too many requests in flight.
 */
export function decideRoute(
  route: DeploymentRoute,
  headers: IncomingHttpHeaders,
  canary: CanaryState,
  key: string | undefined,
): RouteDecision {
  const force = route.settings?.allowForcedVariant ? headers['x-canary-force'] : undefined;
  if (force === 'baseline')
    return { role: 'baseline', upstream: route.baseline, analysed: false, forced: true, diverted: null };
  if (force === 'canary' && route.canary !== null)
    return { role: 'canary', upstream: route.canary, analysed: false, forced: true, diverted: null };
  const pick = pickVariant(route, key);
  if (pick.role === 'canary') {
    // Tripped: the canary is off live traffic until the control plane publishes a newer table.
    const diverted = canary.tripped(route.name, pick.upstream.version)
      ? 'tripped'
      : canary.inFlight(route.name) >= canary.inFlightCap
        ? 'in_flight_cap'
        : null;
    if (diverted) return { role: 'baseline', upstream: route.baseline, analysed: false, forced: false, diverted };
  }
  return {
    role: pick.role,
    upstream: pick.upstream,
    analysed: true,
    forced: false,
    diverted: null,
    keyGroup: key ? keyGroupOf(key) : undefined,
  };
}

import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { DeploymentRoute, RouteTable } from '../../proxy/contract/route-table.js';
import { clusterName } from '../model/cluster-name.js';
import { type ResourceType, TYPE } from './protos.js';

/**
 * The pure half of the xDS server (go-control-plane's snapshot builder): a route table in,
 * a versioned set of Envoy resources out, with no I/O. Resources are plain objects in
 * protobuf field names; an `Any` is written `{ '@type': url, ...fields }` and packed by
 * the codec when sent.
 */
export interface XdsOptions {
  /** Port of the HTTP listener Envoy opens for clients. */
  listenerPort: number;
}

export const ENVOY_LISTENER = 'canary_http';
export const DEFAULT_XDS_OPTIONS: XdsOptions = { listenerPort: 10000 };
/** Weights are sent in basis points so fractional percentages (0.5%) survive. */
const WEIGHT_SCALE = 100;

export type Resource = Record<string, unknown> & { name?: string; cluster_name?: string };

export interface Snapshot {
  /** One version per resource type: content hashes, so only changed types are pushed. */
  versions: Record<ResourceType, string>;
  resources: Record<ResourceType, Map<string, Resource>>;
}

export const grpcRouteName = (deployment: string) => `grpc_${deployment}`;

const ads = { ads: {}, resource_api_version: 'V3' };
const routerFilter = { name: 'envoy.filters.http.router', typed_config: { '@type': TYPE.router } };

function hcm(statPrefix: string, routeConfigName: string) {
  return {
    '@type': TYPE.hcm,
    stat_prefix: statPrefix,
    rds: { route_config_name: routeConfigName, config_source: ads },
    http_filters: [routerFilter],
  };
}

/**
 * A shadowing canary: Envoy mirrors the same share of requests to it (fire and forget).
 * Envoy discards the mirrored answers — agreement is computed only by canary-mesh proxies.
 */
function mirrorPolicies(d: DeploymentRoute) {
  if (!d.shadow || !d.canary) return {};
  return {
    request_mirror_policies: [
      {
        cluster: clusterName(d.name, d.canary.version),
        runtime_fraction: {
          default_value: { numerator: Math.round(d.shadow.percent * 10_000), denominator: 'MILLION' },
        },
      },
    ],
  };
}

/** A version URL's path prefix (`http://h/models/iris` → `/models/iris`; none → ''). */
const pathPrefix = (url: string) => new URL(url).pathname.replace(/\/$/, '');

/**
 * The HTTP listener's routes for one deployment: `/{deployment}/{rest}` → `{prefix}/{rest}`,
 * the version URL's path prefix kept as the proxy keeps it. Envoy rewrites per route, not per
 * weighted cluster, so versions with different prefixes get a route each, the canary's taking
 * its share of requests by runtime_fraction (Envoy's traffic-shifting form).
 */
function httpRoutes(d: DeploymentRoute) {
  const match = { prefix: `/${d.name}/` };
  const base = pathPrefix(d.baseline.url);
  if (!d.canary || pathPrefix(d.canary.url) === base)
    return [
      { match, route: { prefix_rewrite: `${base}/`, weighted_clusters: weightedClusters(d), ...mirrorPolicies(d) } },
    ];
  // All of one version: the weighted cluster lists of a 0% and a 100% canary.
  const baseline = weightedClusters({ ...d, canary: { ...d.canary, weight: 0 } });
  const canary = weightedClusters({ ...d, canary: { ...d.canary, weight: 100 } });
  const share = Math.round(d.canary.weight * 100);
  const fraction = { default_value: { numerator: share, denominator: 'TEN_THOUSAND' } };
  return [
    {
      match: { ...match, runtime_fraction: fraction },
      route: { prefix_rewrite: `${pathPrefix(d.canary.url)}/`, weighted_clusters: canary },
    },
    { match, route: { prefix_rewrite: `${base}/`, weighted_clusters: baseline, ...mirrorPolicies(d) } },
  ];
}

function weightedClusters(d: DeploymentRoute) {
  const canaryWeight = d.canary ? Math.round(d.canary.weight * WEIGHT_SCALE) : 0;
  const entry = (role: string, version: string, weight: number) => ({
    name: clusterName(d.name, version),
    weight: { value: weight },
    // The same response headers the canary-mesh proxy adds.
    response_headers_to_add: [
      { header: { key: 'x-canary-variant', value: role }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-canary-version', value: version }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ],
  });
  const clusters = [];
  if (canaryWeight < 100 * WEIGHT_SCALE)
    clusters.push(entry('baseline', d.baseline.version, 100 * WEIGHT_SCALE - canaryWeight));
  if (d.canary && canaryWeight > 0) clusters.push(entry('canary', d.canary.version, canaryWeight));
  return { clusters };
}

/** An h2c:// version (a gRPC model server): Envoy speaks HTTP/2 with prior knowledge to it. */
const H2C_PROTOCOL_OPTIONS = {
  typed_extension_protocol_options: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
};

function upstreamResources(
  d: DeploymentRoute,
  version: string,
  url: string,
): { cluster: Resource; endpoint: Resource | null } {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const name = clusterName(d.name, version);
  const assignment = {
    cluster_name: name,
    endpoints: [
      {
        locality: { region: '', zone: '', sub_zone: '' },
        load_balancing_weight: { value: 1 },
        lb_endpoints: [{ endpoint: { address: { socket_address: { address: u.hostname, port_value: port } } } }],
      },
    ],
  };
  const base = {
    name,
    connect_timeout: { seconds: '5', nanos: 0 },
    lb_policy: 'ROUND_ROBIN',
    ...(u.protocol === 'h2c:' ? H2C_PROTOCOL_OPTIONS : {}),
  };
  // IP addresses go through EDS; host names (compose service names) are resolved by the client.
  if (isIP(u.hostname))
    return { cluster: { ...base, type: 'EDS', eds_cluster_config: { eds_config: ads } }, endpoint: assignment };
  return {
    cluster: { ...base, type: 'LOGICAL_DNS', dns_lookup_family: 'V4_ONLY', load_assignment: assignment },
    endpoint: null,
  };
}

function versionOf(resources: Map<string, Resource>): string {
  const h = createHash('sha256');
  for (const name of [...resources.keys()].sort()) h.update(name).update(JSON.stringify(resources.get(name)));
  return h.digest('hex').slice(0, 16);
}

export function buildSnapshot(table: RouteTable, opts: XdsOptions = DEFAULT_XDS_OPTIONS): Snapshot {
  const listeners = new Map<string, Resource>();
  const routes = new Map<string, Resource>();
  const clusters = new Map<string, Resource>();
  const endpoints = new Map<string, Resource>();
  const deployments = Object.values(table.deployments).sort((a, b) => a.name.localeCompare(b.name));

  // Envoy: one HTTP listener, /{deployment}/{rest} → /{rest}, like the proxy's gateway mode.
  listeners.set(ENVOY_LISTENER, {
    name: ENVOY_LISTENER,
    address: { socket_address: { address: '0.0.0.0', port_value: opts.listenerPort } },
    filter_chains: [
      {
        filters: [
          { name: 'envoy.filters.network.http_connection_manager', typed_config: hcm(ENVOY_LISTENER, ENVOY_LISTENER) },
        ],
      },
    ],
  });
  routes.set(ENVOY_LISTENER, {
    name: ENVOY_LISTENER,
    virtual_hosts: [
      {
        name: 'deployments',
        domains: ['*'],
        routes: deployments.flatMap(httpRoutes),
      },
    ],
  });

  for (const d of deployments) {
    // Proxyless gRPC: a client dialing xds:///{deployment} asks for the listener named after it.
    listeners.set(d.name, { name: d.name, api_listener: { api_listener: hcm(d.name, grpcRouteName(d.name)) } });
    routes.set(grpcRouteName(d.name), {
      name: grpcRouteName(d.name),
      virtual_hosts: [
        {
          name: d.name,
          domains: ['*'],
          routes: [{ match: { prefix: '' }, route: { weighted_clusters: weightedClusters(d) } }],
        },
      ],
    });
    const ups: [string, string][] = [[d.baseline.version, d.baseline.url]];
    if (d.canary) ups.push([d.canary.version, d.canary.url]);
    for (const [version, url] of ups) {
      const { cluster, endpoint } = upstreamResources(d, version, url);
      clusters.set(cluster.name!, cluster);
      if (endpoint) endpoints.set(endpoint.cluster_name!, endpoint);
    }
  }
  const resources = {
    [TYPE.listener]: listeners,
    [TYPE.route]: routes,
    [TYPE.cluster]: clusters,
    [TYPE.endpoint]: endpoints,
  } as Snapshot['resources'];
  const versions = Object.fromEntries(
    Object.entries(resources).map(([t, r]) => [t, versionOf(r)]),
  ) as Snapshot['versions'];
  return { versions, resources };
}

/**
 * Every reference resolves inside the snapshot: listeners → route configs, routes →
 * clusters, EDS clusters → endpoints. Returns the problems; empty means consistent.
 */
export function checkConsistency(s: Snapshot): string[] {
  const problems: string[] = [];
  for (const l of s.resources[TYPE.listener].values()) {
    const hcmCfg =
      (l.api_listener as { api_listener?: { rds?: { route_config_name: string } } } | undefined)?.api_listener ??
      (l.filter_chains as { filters: { typed_config: { rds?: { route_config_name: string } } }[] }[] | undefined)?.[0]
        ?.filters[0]?.typed_config;
    const rds = hcmCfg?.rds?.route_config_name;
    if (rds && !s.resources[TYPE.route].has(rds)) problems.push(`listener ${l.name} uses missing route config ${rds}`);
  }
  for (const r of s.resources[TYPE.route].values()) {
    for (const vh of r.virtual_hosts as {
      routes: { route: { weighted_clusters: { clusters: { name: string; weight: { value: number } }[] } } }[];
    }[]) {
      for (const route of vh.routes) {
        const wc = route.route.weighted_clusters.clusters;
        if (wc.reduce((a, c) => a + c.weight.value, 0) <= 0)
          problems.push(`route config ${r.name}: weights add up to 0`);
        for (const c of wc)
          if (!s.resources[TYPE.cluster].has(c.name))
            problems.push(`route config ${r.name} uses missing cluster ${c.name}`);
      }
    }
  }
  for (const c of s.resources[TYPE.cluster].values()) {
    if (c.type === 'EDS' && !s.resources[TYPE.endpoint].has(c.name!))
      problems.push(`cluster ${c.name} has no endpoints`);
  }
  return problems;
}

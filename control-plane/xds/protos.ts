import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Envoy's v3 protos as @grpc/grpc-js-xds ships them (its deps/ folder): the one copy both
 * the code generator (scripts/generate-xds-types.mjs) and the runtime load. Never vendored.
 */
const require = createRequire(import.meta.url);
const XDS_PKG = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));

export const PROTO_INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) =>
  path.join(XDS_PKG, 'deps', d),
);

/** The files whose messages canary-mesh builds or reads. */
export const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
];

/** Resource type URLs (state-of-the-world ADS). */
export const TYPE = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
} as const;
export type ResourceType = typeof TYPE.listener | typeof TYPE.route | typeof TYPE.cluster | typeof TYPE.endpoint;

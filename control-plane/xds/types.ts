// Re-exports of the generated Envoy types that canary-mesh uses (see scripts/generate-xds-types.mjs).
export type { Listener } from './generated/envoy/config/listener/v3/Listener.js';
export type { RouteConfiguration } from './generated/envoy/config/route/v3/RouteConfiguration.js';
export type { Cluster } from './generated/envoy/config/cluster/v3/Cluster.js';
export type { ClusterLoadAssignment } from './generated/envoy/config/endpoint/v3/ClusterLoadAssignment.js';
export type { HttpConnectionManager } from './generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
export type { DiscoveryRequest__Output as DiscoveryRequest } from './generated/envoy/service/discovery/v3/DiscoveryRequest.js';
export type { DiscoveryResponse } from './generated/envoy/service/discovery/v3/DiscoveryResponse.js';
export type { ProtoGrpcType as AdsProto } from './generated/ads.js';

// The generated Envoy types the ADS server uses (see scripts/generate-xds-types.mjs).

export type { ProtoGrpcType as AdsProto } from './generated/ads.js';
export type { DiscoveryRequest__Output as DiscoveryRequest } from './generated/envoy/service/discovery/v3/DiscoveryRequest.js';
export type { DiscoveryResponse } from './generated/envoy/service/discovery/v3/DiscoveryResponse.js';

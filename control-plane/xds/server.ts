import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../../common/logger.js';
import { ALL_NODES, type SnapshotCache } from './cache.js';
import { encode } from './codec.js';
import { PROTO_INCLUDE_DIRS, type ResourceType, TYPE } from './protos.js';
import type { Snapshot } from './snapshot.js';
import type { AdsProto, DiscoveryRequest, DiscoveryResponse } from './types.js';

/** Listener and cluster requests with no names mean "all of them" (state-of-the-world wildcard). */
const WILDCARD_TYPES = new Set<string>([TYPE.listener, TYPE.cluster]);
const KNOWN_TYPES = new Set<string>([TYPE.listener, TYPE.route, TYPE.cluster, TYPE.endpoint]);

export interface XdsCounters {
  streams: number;
  pushes: number;
  acks: number;
  nacks: number;
}

interface Subscription {
  names: string[];
  /** Version and nonce of the last response on this stream for this type. */
  sentVersion: string | null;
  sentNonce: string | null;
  ackedVersion: string | null;
}

/**
 * The Aggregated Discovery Service stream handler (state of the world, Envoy API v3):
 * answers each subscription, pushes a type again only when its version changes, and keeps
 * version_info / nonce bookkeeping. A NACK is logged and counted; the client keeps its last
 * good config and nothing is re-sent until the next snapshot.
 */
export class XdsServer {
  readonly counters: XdsCounters = { streams: 0, pushes: 0, acks: 0, nacks: 0 };
  readonly lastNack: { node: string; typeUrl: string; version: string; message: string }[] = [];
  private server: grpc.Server | null = null;
  private nonce = 0;

  constructor(
    readonly cache: SnapshotCache,
    private readonly logger: Logger,
  ) {}

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: PROTO_INCLUDE_DIRS,
    });
    const proto = grpc.loadPackageDefinition(def) as unknown as AdsProto;
    const server = new grpc.Server();
    server.addService(proto.envoy.service.discovery.v3.AggregatedDiscoveryService.service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) =>
        this.stream(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        call.emit('error', {
          code: grpc.status.UNIMPLEMENTED,
          details: 'canary-mesh serves state-of-the-world ADS only',
        });
      },
    });
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    this.server = server;
    return bound;
  }

  private stream(call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    this.counters.streams++;
    const subs = new Map<string, Subscription>();
    let node: string | null = null;
    let unwatch: (() => void) | null = null;
    const peer = call.getPeer();

    const send = (typeUrl: string, snapshot: Snapshot | undefined) => {
      const sub = subs.get(typeUrl);
      if (!sub || !snapshot) return;
      const all = snapshot.resources[typeUrl as ResourceType];
      const wanted = sub.names.length === 0 && WILDCARD_TYPES.has(typeUrl) ? [...all.keys()] : sub.names;
      const resources = wanted
        .filter((n) => all.has(n))
        .map((n) => ({ type_url: typeUrl, value: encode(typeUrl, all.get(n)!) }));
      const version = snapshot.versions[typeUrl as ResourceType];
      const nonce = String(++this.nonce);
      sub.sentVersion = version;
      sub.sentNonce = nonce;
      this.counters.pushes++;
      call.write({ version_info: version, resources, type_url: typeUrl, nonce });
      this.logger.debug({ node, peer, typeUrl, version, resources: resources.length }, 'xds push');
    };

    const onSnapshot = (snapshot: Snapshot) => {
      for (const [typeUrl, sub] of subs)
        if (sub.sentVersion !== snapshot.versions[typeUrl as ResourceType]) send(typeUrl, snapshot);
    };

    call.on('data', (req: DiscoveryRequest) => {
      if (node === null) {
        node = req.node?.id || ALL_NODES;
        unwatch = this.cache.watch(node, onSnapshot);
        this.logger.info({ node, peer }, 'xds stream opened');
      }
      const typeUrl = req.type_url;
      if (!KNOWN_TYPES.has(typeUrl)) return;
      const names = [...req.resource_names].sort();
      let sub = subs.get(typeUrl);
      if (!sub) {
        sub = { names, sentVersion: null, sentNonce: null, ackedVersion: null };
        subs.set(typeUrl, sub);
        return send(typeUrl, this.cache.get(node));
      }
      // A response to an older push: the client will answer the newest one too.
      if (req.response_nonce !== sub.sentNonce) return;
      if (req.error_detail) {
        this.counters.nacks++;
        const message = req.error_detail.message;
        this.lastNack.unshift({ node, typeUrl, version: sub.sentVersion ?? '', message });
        this.lastNack.splice(20);
        this.logger.error(
          { node, typeUrl, rejectedVersion: sub.sentVersion, keptVersion: req.version_info, message },
          'xds update NACKed: the client keeps its last good config',
        );
      } else {
        this.counters.acks++;
        sub.ackedVersion = req.version_info;
      }
      const namesChanged = names.join('\u0000') !== sub.names.join('\u0000');
      sub.names = names;
      if (namesChanged) send(typeUrl, this.cache.get(node));
    });
    const end = () => {
      unwatch?.();
      unwatch = null;
    };
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('error', end);
    call.on('cancelled', end);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    // ADS streams never end on their own: give them a moment, then cut them.
    await Promise.race([
      new Promise<void>((resolve) => s.tryShutdown(() => resolve())),
      new Promise((r) => setTimeout(r, 500).unref()),
    ]);
    s.forceShutdown();
  }
}

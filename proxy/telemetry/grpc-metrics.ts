import type { Registry } from 'prom-client';
import type { Role } from '../contract/route-table.js';
import { grpcCodeName } from '../grpc/status.js';
import { type CounterSeries, FastCounter } from './fast-metrics.js';

/** Distinct method label values per deployment; calls to further methods are labelled `other`. */
export const MAX_METHODS_PER_DEPLOYMENT = 32;

/** What a finished gRPC call was: its method (`/package.Service/Method`) and status code. */
export interface GrpcCall {
  method: string;
  code: number;
}

/**
 * gRPC calls by method and status code on the admin port's /metrics. The method label is bounded
 * per deployment (a client inventing method names cannot grow the series without end).
 */
export class GrpcMetrics {
  private readonly calls: FastCounter<'deployment' | 'version' | 'role' | 'method' | 'grpc_code'>;
  private readonly methods = new Map<string, Set<string>>();
  /** deployment → role → version → method → series by code. */
  private readonly series = new Map<string, Record<Role, Map<string, Map<string, CounterSeries[]>>>>();

  constructor(registry: Registry) {
    this.calls = new FastCounter(
      'canary_proxy_grpc_calls_total',
      'gRPC calls answered, by model version, role, method and grpc-status code (a failed call is usually an HTTP 200)',
      ['deployment', 'version', 'role', 'method', 'grpc_code'],
      registry,
    );
  }

  observe(deployment: string, version: string, role: Role, call: GrpcCall): void {
    // On every gRPC call's path: found through maps of the table's own strings and the method,
    // with no key built per call.
    let byRole = this.series.get(deployment);
    if (!byRole) {
      byRole = { baseline: new Map(), canary: new Map() };
      this.series.set(deployment, byRole);
    }
    let byMethod = byRole[role].get(version);
    if (!byMethod) {
      byMethod = new Map();
      byRole[role].set(version, byMethod);
    }
    let byCode = byMethod.get(call.method);
    if (!byCode) {
      byCode = [];
      // Bounded as the labels are: methods past the cap share the `other` series.
      if (byMethod.size < MAX_METHODS_PER_DEPLOYMENT * 2) byMethod.set(call.method, byCode);
    }
    let series = byCode[call.code];
    if (!series) {
      const method = this.methodLabel(deployment, call.method);
      series = this.calls.series({ deployment, version, role, method, grpc_code: grpcCodeName(call.code) });
      byCode[call.code] = series;
    }
    series.inc();
  }

  private methodLabel(deployment: string, method: string): string {
    let seen = this.methods.get(deployment);
    if (!seen) {
      seen = new Set();
      this.methods.set(deployment, seen);
    }
    if (seen.has(method)) return method;
    if (seen.size >= MAX_METHODS_PER_DEPLOYMENT) return 'other';
    seen.add(method);
    return method;
  }
}

import { request } from 'undici';
import { summarize, type VersionStats } from '../../proxy/telemetry/stats.js';
import type { MetricsSource } from './source.js';
import { clusterName } from '../xds/snapshot.js';

/**
 * Stats from Prometheus, for Envoy data planes or users who already scrape. Two query
 * sets: the canary-mesh proxy's own metrics, and Envoy's cluster metrics for the clusters
 * the xDS server names `{deployment}__{version}`. Any failure throws: the analysis turns
 * it into an `error` verdict and holds — a query outage never rolls anything back.
 */
export type PromFlavor = 'proxy' | 'envoy';

const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

export function promQueries(flavor: PromFlavor, deployment: string, version: string, rangeS: number) {
  const r = `${Math.max(1, Math.round(rangeS))}s`;
  if (flavor === 'proxy') {
    const sel = `deployment="${esc(deployment)}",version="${esc(version)}"`;
    const q = (p: number) => `1000 * histogram_quantile(${p}, sum by (le) (increase(canary_proxy_request_duration_seconds_bucket{${sel}}[${r}])))`;
    return {
      requests: `sum(increase(canary_proxy_requests_total{${sel},outcome!="aborted"}[${r}]))`,
      modelErrors: `sum(increase(canary_proxy_requests_total{${sel},outcome=~"server_error|timeout|connection_error"}[${r}]))`,
      clientErrors: `sum(increase(canary_proxy_requests_total{${sel},outcome="client_error"}[${r}]))`,
      p50: q(0.5), p95: q(0.95), p99: q(0.99),
    };
  }
  const sel = `envoy_cluster_name="${esc(clusterName(deployment, version))}"`;
  const q = (p: number) => `histogram_quantile(${p}, sum by (le) (increase(envoy_cluster_upstream_rq_time_bucket{${sel}}[${r}])))`;
  return {
    requests: `sum(increase(envoy_cluster_upstream_rq_xx{${sel}}[${r}]))`,
    // Envoy counts resets and timeouts as 5xx answers it generated itself.
    modelErrors: `sum(increase(envoy_cluster_upstream_rq_xx{${sel},envoy_response_code_class="5"}[${r}]))`,
    clientErrors: `sum(increase(envoy_cluster_upstream_rq_xx{${sel},envoy_response_code_class="4"}[${r}]))`,
    p50: q(0.5), p95: q(0.95), p99: q(0.99),
  };
}

export class PrometheusSource implements MetricsSource {
  readonly name = 'prometheus';
  constructor(private readonly baseUrl: string, private readonly flavor: PromFlavor = 'proxy', private readonly timeoutMs = 5000) {}

  /** One instant query; NaN and empty results are "no data". */
  private async scalar(query: string, at: number): Promise<number | null> {
    const url = new URL('/api/v1/query', this.baseUrl);
    url.searchParams.set('query', query);
    url.searchParams.set('time', String(at / 1000));
    const res = await request(url, { headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    const body = await res.body.json() as { status: string; error?: string; data?: { resultType: string; result: { value: [number, string] }[] } };
    if (res.statusCode !== 200 || body.status !== 'success') throw new Error(`prometheus query failed (${res.statusCode}): ${body.error ?? 'unknown error'}`);
    const v = body.data?.result[0]?.value[1];
    if (v === undefined) return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }

  async versionStats(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats> {
    const q = promQueries(this.flavor, deployment, version, (toMs - fromMs) / 1000);
    const [requests, modelErrors, clientErrors, p50, p95, p99] = await Promise.all([q.requests, q.modelErrors, q.clientErrors, q.p50, q.p95, q.p99].map((x) => this.scalar(x, toMs)));
    // increase() extrapolates to the range edges; counts are whole requests.
    const stats = summarize(deployment, version, fromMs, toMs, Math.round(requests ?? 0), Math.round(modelErrors ?? 0), Math.round(clientErrors ?? 0), new Map());
    return { ...stats, p50, p95, p99 };
  }
}

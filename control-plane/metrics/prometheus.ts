import { request } from 'undici';
import { addValue, type Buckets } from '../../proxy/contract/histogram.js';
import { summarize, type VersionStats } from '../../proxy/contract/stats.js';
import { clusterName } from '../model/cluster-name.js';
import type { MetricsSource } from './source.js';

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
    const q = (p: number) =>
      `1000 * histogram_quantile(${p}, sum by (le) (increase(canary_proxy_request_duration_seconds_bucket{${sel}}[${r}])))`;
    return {
      requests: `sum(increase(canary_proxy_requests_total{${sel},outcome!="aborted"}[${r}]))`,
      modelErrors: `sum(increase(canary_proxy_requests_total{${sel},outcome=~"server_error|timeout|connection_error"}[${r}]))`,
      clientErrors: `sum(increase(canary_proxy_requests_total{${sel},outcome="client_error"}[${r}]))`,
      p50: q(0.5),
      p95: q(0.95),
      p99: q(0.99),
      buckets: `sum by (le) (increase(canary_proxy_request_duration_seconds_bucket{${sel}}[${r}]))`,
      bucketUnitMs: 1000,
    };
  }
  const sel = `envoy_cluster_name="${esc(clusterName(deployment, version))}"`;
  const q = (p: number) =>
    `histogram_quantile(${p}, sum by (le) (increase(envoy_cluster_upstream_rq_time_bucket{${sel}}[${r}])))`;
  return {
    requests: `sum(increase(envoy_cluster_upstream_rq_xx{${sel}}[${r}]))`,
    // Envoy counts resets and timeouts as 5xx answers it generated itself.
    modelErrors: `sum(increase(envoy_cluster_upstream_rq_xx{${sel},envoy_response_code_class="5"}[${r}]))`,
    clientErrors: `sum(increase(envoy_cluster_upstream_rq_xx{${sel},envoy_response_code_class="4"}[${r}]))`,
    p50: q(0.5),
    p95: q(0.95),
    p99: q(0.99),
    buckets: `sum by (le) (increase(envoy_cluster_upstream_rq_time_bucket{${sel}}[${r}]))`,
    bucketUnitMs: 1,
  };
}

/**
 * A Prometheus histogram (cumulative counts by `le`) as the proxy's latency buckets: each
 * bucket's count placed at its upper bound, the +Inf bucket at twice the last bound. The
 * latency tests then count "above the limit" at Prometheus's bucket resolution.
 */
export function promBucketsToHistogram(series: { le: string; count: number }[], unitMs: number): Buckets {
  const sorted = series
    .map((s) => ({ le: s.le === '+Inf' ? Infinity : Number(s.le), count: s.count }))
    .filter((s) => !Number.isNaN(s.le))
    .sort((a, b) => a.le - b.le);
  const h: Buckets = new Map();
  let prev = 0,
    lastFinite = 1;
  for (const s of sorted) {
    const n = Math.round(Math.max(0, s.count - prev));
    prev = Math.max(prev, s.count);
    if (Number.isFinite(s.le)) lastFinite = s.le;
    if (n > 0) addValue(h, (Number.isFinite(s.le) ? s.le : 2 * lastFinite) * unitMs, n);
  }
  return h;
}

export class PrometheusSource implements MetricsSource {
  readonly name = 'prometheus';
  constructor(
    private readonly baseUrl: string,
    private readonly flavor: PromFlavor = 'proxy',
    private readonly timeoutMs = 5000,
  ) {}

  /** One instant query's result vector. */
  private async query(
    query: string,
    at: number,
  ): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const url = new URL('/api/v1/query', this.baseUrl);
    url.searchParams.set('query', query);
    url.searchParams.set('time', String(at / 1000));
    const res = await request(url, { headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    const body = (await res.body.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (res.statusCode !== 200 || body.status !== 'success')
      throw new Error(`prometheus query failed (${res.statusCode}): ${body.error ?? 'unknown error'}`);
    return body.data?.result ?? [];
  }

  /** One instant query as a number; NaN and empty results are "no data". */
  private async scalar(query: string, at: number): Promise<number | null> {
    const v = (await this.query(query, at))[0]?.value[1];
    if (v === undefined) return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }

  async versionStats(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats> {
    const q = promQueries(this.flavor, deployment, version, (toMs - fromMs) / 1000);
    const [[requests, modelErrors, clientErrors, p50, p95, p99], buckets] = await Promise.all([
      Promise.all([q.requests, q.modelErrors, q.clientErrors, q.p50, q.p95, q.p99].map((x) => this.scalar(x, toMs))),
      this.query(q.buckets, toMs),
    ]);
    const histogram = promBucketsToHistogram(
      buckets.map((b) => ({ le: b.metric.le, count: Number(b.value[1]) })),
      q.bucketUnitMs,
    );
    // increase() extrapolates to the range edges; counts are whole requests.
    const stats = summarize(
      deployment,
      version,
      fromMs,
      toMs,
      Math.round(requests ?? 0),
      Math.round(modelErrors ?? 0),
      Math.round(clientErrors ?? 0),
      histogram,
    );
    return { ...stats, p50, p95, p99 };
  }
}

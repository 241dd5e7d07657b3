import { performance } from 'node:perf_hooks';
import { type Answer, compareAnswers } from '../contract/compare.js';
import { type DeploymentRoute, type ShadowRoute, type Upstream, upstreamParts } from '../contract/route-table.js';
import { isModelError, type Outcome } from '../contract/stats.js';
import { DEFAULT_GRPC_OUTCOMES, type GrpcOutcomes, grpcOutcomesFor, isGrpcContentType } from '../grpc/status.js';
import type { StatsAccumulator } from '../telemetry/accumulator.js';
import type { ProxyRecorder } from '../telemetry/recorder.js';
import { classifyError, classifyStatus } from '../upstream/forward.js';
import { h2Outcome } from '../upstream/forward-h2.js';
import type { H2Sessions } from '../upstream/h2-sessions.js';
import type { UpstreamPools } from '../upstream/pools.js';
import { requestH2 } from '../upstream/request-h2.js';

/** How often the proxy's event-loop delay is sampled. */
const LAG_SAMPLE_MS = 50;

/** Answers larger than this are not compared (nor held): a shadow's memory is bounded. */
export const MAX_SHADOW_ANSWER_BYTES = 256 * 1024;

export interface MirroredRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Buffer | null;
  requestId: string;
  inputSha256: string;
}

/** What one off-path request got: an answer (any status), or a failure outcome. */
type Sent =
  | { answer: Answer; outcome: Outcome; latencyMs: number }
  | { answer: null; outcome: Outcome; latencyMs: number };

/**
 * Shadow traffic (DESIGN.md §3, policy.shadow). A sampled request is also sent to the canary
 * while the baseline answers the user; once both are in, the canary's answer is compared with
 * the baseline's and discarded. A sample of those is sent to the baseline a second time, so a
 * nondeterministic model's disagreement with itself (the noise floor) is measured too.
 *
 * Nothing here is on the user's path: the handler starts a shadow and never awaits it. Each
 * shadow has its own timeout and answer-size cap, and a deployment has at most
 * `maxConcurrency` shadow requests in flight per proxy — past that, shadows are dropped and
 * counted, never queued, so a slow or hung canary cannot hold memory or sockets without bound;
 * and while the proxy's own event loop lags more than `maxProxyLagMs`, shadows are dropped too.
 */
export class ShadowMirror {
  private readonly inFlight = new Map<string, number>();
  /** The proxy's own event-loop delay: the largest timer drift over the last second. */
  private lagMs = 0;
  private readonly lagTimer: NodeJS.Timeout;
  constructor(
    private readonly deps: { pools: UpstreamPools; h2: H2Sessions; stats: StatsAccumulator; recorder: ProxyRecorder },
  ) {
    let last = performance.now();
    const recent: number[] = [];
    this.lagTimer = setInterval(() => {
      const now = performance.now();
      recent.push(Math.max(0, now - last - LAG_SAMPLE_MS));
      if (recent.length > 1000 / LAG_SAMPLE_MS) recent.shift();
      this.lagMs = Math.max(...recent);
      last = now;
    }, LAG_SAMPLE_MS);
    this.lagTimer.unref();
  }

  stop(): void {
    clearInterval(this.lagTimer);
  }

  /** Whether this request is one of the shadow's sample (a route shadows only with a canary). */
  sampled(route: DeploymentRoute, random: () => number = Math.random): boolean {
    return !!route.shadow && !!route.canary && random() * 100 < route.shadow.percent;
  }

  /** A shadow that could not be sent (body too large to hold, over the concurrency cap, or the proxy busy). */
  drop(route: DeploymentRoute): void {
    this.deps.stats.count(route.name, route.canary!.version, 'dropped', Date.now());
    this.deps.recorder.shadowRequests.labels(route.name, route.canary!.version, 'dropped').inc();
  }

  /**
   * Sends the request to the canary (and for the noise sample to the baseline again). Returns
   * a function to call with the baseline's answer to the user (null when it has none to
   * compare: an error, an abort, a body too large); it compares and counts in the background.
   */
  start(
    route: DeploymentRoute,
    req: MirroredRequest,
    random: () => number = Math.random,
  ): ((baseline: Answer | null) => void) | null {
    const shadow = route.shadow!;
    const canary = route.canary!;
    const noise = random() * 100 < shadow.noisePercent;
    const wanted = noise ? 2 : 1;
    const busy = this.inFlight.get(route.name) ?? 0;
    // Mirroring costs the proxy CPU (a second upstream request and a comparison): shadows use
    // only spare capacity, so a proxy whose own event loop falls behind drops them, and its
    // users' latency does not pay for the shadow.
    if (busy + wanted > shadow.maxConcurrency || this.lagMs > shadow.maxProxyLagMs) {
      this.drop(route);
      return null;
    }
    this.inFlight.set(route.name, busy + wanted);
    const release = () => this.inFlight.set(route.name, (this.inFlight.get(route.name) ?? 1) - 1);
    const outcomes = grpcOutcomesFor(route.settings?.grpcModelErrors);
    const toCanary = this.send(canary, req, shadow, outcomes).finally(release);
    const again = noise ? this.send(route.baseline, req, shadow, outcomes).finally(release) : null;
    let baselineAnswer!: (a: Answer | null) => void;
    const fromBaseline = new Promise<Answer | null>((r) => {
      baselineAnswer = r;
    });
    void this.settle(route, req, toCanary, again, fromBaseline);
    return baselineAnswer;
  }

  private async settle(
    route: DeploymentRoute,
    req: MirroredRequest,
    toCanary: Promise<Sent>,
    again: Promise<Sent> | null,
    fromBaseline: Promise<Answer | null>,
  ): Promise<void> {
    const { stats, recorder } = this.deps;
    const canary = route.canary!;
    const name = route.name;
    const c = await toCanary;
    // The canary's shadow answers feed its error and latency rules like live ones would.
    stats.record(name, canary.version, c.outcome, c.latencyMs, Date.now());
    const b = await fromBaseline;
    const now = Date.now();
    let result: 'agreed' | 'disagreed' | 'error' | 'timeout' | 'uncompared';
    if (c.outcome === 'timeout') result = 'timeout';
    else if (isModelError(c.outcome)) result = 'error';
    else if (!b || !c.answer || c.outcome === 'aborted') result = 'uncompared';
    else {
      const cmp = compareAnswers(b, c.answer, route.shadow!.compare);
      result = cmp.agreed ? 'agreed' : 'disagreed';
      stats.count(name, canary.version, 'compared', now);
      if (cmp.agreed) stats.count(name, canary.version, 'agreed', now);
      else
        stats.example(name, canary.version, {
          at: now,
          requestId: req.requestId,
          inputSha256: req.inputSha256,
          baseline: cmp.baseline,
          canary: cmp.canary,
        });
    }
    if (result === 'timeout') stats.count(name, canary.version, 'timeouts', now);
    if (result === 'error') stats.count(name, canary.version, 'errors', now);
    recorder.shadowRequests.labels(name, canary.version, result).inc();

    if (!again) return;
    const n = await again;
    if (!b || !n.answer || n.outcome !== classifyStatus(b.status)) return; // the noise floor compares two answers, not failures
    const agreed = compareAnswers(b, n.answer, route.shadow!.compare).agreed;
    stats.count(name, route.baseline.version, 'noiseCompared', now);
    if (agreed) stats.count(name, route.baseline.version, 'noiseAgreed', now);
    recorder.shadowNoise.labels(name, route.baseline.version, agreed ? 'agreed' : 'disagreed').inc();
  }

  /** An off-path call to an `h2c://` version (a gRPC answer's outcome is its grpc-status; its bytes are compared). */
  private async sendH2(
    origin: string,
    prefix: string,
    req: MirroredRequest,
    signal: AbortSignal,
    grpcOutcomes: GrpcOutcomes,
    t0: number,
  ): Promise<Sent> {
    const grpc = isGrpcContentType(req.headers['content-type'] as string | undefined);
    const headers = { ...req.headers, 'x-canary-shadow': 'true', ...(grpc ? { te: 'trailers' } : {}) };
    const r = await requestH2(
      this.deps.h2,
      origin,
      { method: req.method, path: prefix + req.path, headers, body: req.body },
      MAX_SHADOW_ANSWER_BYTES,
      signal,
    );
    const { outcome } = h2Outcome(r.status, grpc, r.grpcStatus, grpcOutcomes);
    const latencyMs = performance.now() - t0;
    return r.body
      ? { answer: { status: r.status, body: r.body }, outcome, latencyMs }
      : { answer: null, outcome, latencyMs };
  }

  /** One off-path request with its own deadline and answer cap; never throws. */
  private async send(
    to: Upstream,
    req: MirroredRequest,
    shadow: ShadowRoute,
    grpcOutcomes: GrpcOutcomes = DEFAULT_GRPC_OUTCOMES,
  ): Promise<Sent> {
    const t0 = performance.now();
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, shadow.timeoutMs);
    try {
      const { origin, prefix } = upstreamParts(to.url);
      if (origin.startsWith('h2c:')) return await this.sendH2(origin, prefix, req, ctl.signal, grpcOutcomes, t0);
      const r = await this.deps.pools.get(origin).request({
        method: req.method as 'POST',
        path: prefix + req.path,
        body: req.body ?? undefined,
        signal: ctl.signal,
        headers: { ...req.headers, 'x-canary-shadow': 'true' },
        headersTimeout: shadow.timeoutMs,
        bodyTimeout: shadow.timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of r.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_SHADOW_ANSWER_BYTES) {
          ctl.abort();
          break;
        }
        chunks.push(chunk as Buffer);
      }
      const latencyMs = performance.now() - t0;
      const outcome = classifyStatus(r.statusCode);
      return size > MAX_SHADOW_ANSWER_BYTES
        ? { answer: null, outcome, latencyMs }
        : { answer: { status: r.statusCode, body: Buffer.concat(chunks) }, outcome, latencyMs };
    } catch (err) {
      const latencyMs = performance.now() - t0;
      return {
        answer: null,
        outcome: timedOut ? 'timeout' : classifyError(err as Error & { code?: string }),
        latencyMs,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}

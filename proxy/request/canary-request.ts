import { performance } from 'node:perf_hooks';
import type { DeploymentRoute, Role, Upstream } from '../contract/route-table.js';
import { isModelError, type Outcome } from '../contract/stats.js';
import type { ProxyRecorder } from '../telemetry/recorder.js';
import { Cancel } from '../upstream/cancel.js';
import type { ForwardResult } from '../upstream/forward.js';
import { hedgeDelay, type LatencyTracker } from '../upstream/hedge.js';
import type { ReplayableBody } from '../upstream/replayable-body.js';
import { isOwnBodyTooLarge } from './errors.js';
import type { OutcomeRecorder } from './outcomes.js';

/** One upstream attempt of a request: to whom, as which role, cancelled by `signal`. */
export type Attempt = (
  to: Upstream,
  as: Role,
  signal: Cancel,
  discardServerErrors: boolean,
  extra?: Record<string, string>,
  claim?: () => boolean,
) => Promise<ForwardResult>;

/** Canary requests in flight per deployment (the route decision diverts past the pool's size). */
export class CanaryInFlight {
  private readonly counts = new Map<string, number>();
  get(deployment: string): number {
    return this.counts.get(deployment) ?? 0;
  }
  add(deployment: string, n: number): void {
    this.counts.set(deployment, this.get(deployment) + n);
  }
}

/** Whether a canary request may be sent again to the baseline. */
export interface Resend {
  /** The body is held whole: the request may be raced (hedged) as well as retried. */
  hedge: boolean;
  /** A failure before any answer reached the client may be retried. */
  retry: boolean;
  /** A streamed body kept while small and unanswered (a gRPC call): retried only while it is whole. */
  replay: ReplayableBody | null;
}

export interface SafetyNetDeps {
  metrics: ProxyRecorder;
  outcomes: OutcomeRecorder;
  latency: LatencyTracker;
  inFlight: CanaryInFlight;
}

/**
 * A canary request, with the baseline as its safety net when the body can be resent:
 * - hedge: not answered after the hedge delay, the request also goes to the baseline; the
 *   first answer to arrive (response headers) goes to the user and the other is aborted. A
 *   canary that lost the race is recorded `hedge_lost` with the time it had taken: slow, not
 *   failed (the fast trip still counts it, so a canary that never answers is tripped).
 * - retry: a canary failure before any byte reached the user is retried on the baseline.
 * The user never waits on a hanging canary longer than the hedge delay plus the baseline.
 */
export async function canaryRequest(
  deps: SafetyNetDeps,
  route: DeploymentRoute,
  canary: Upstream,
  resend: Resend,
  attempt: Attempt,
  client: Cancel,
  tableVersion: number,
  keyGroup?: number,
): Promise<{ result: ForwardResult; role: Role; upstream: Upstream }> {
  const name = route.name;
  const canaryCtl = new Cancel(),
    baselineCtl = new Cancel();
  const onClient = () => {
    canaryCtl.cancel('client');
    baselineCtl.cancel('client');
  };
  if (client.aborted) onClient();
  else client.once('abort', onClient);
  let winner: Role | null = null;
  const claim = (r: Role) => () => {
    if (winner === null) {
      winner = r;
      (r === 'canary' ? baselineCtl : canaryCtl).cancel('lost');
    }
    return winner === r;
  };
  let backup: Promise<ForwardResult> | null = null;
  let backupT0 = 0;
  const startBackup = (header: 'x-canary-hedged-from' | 'x-canary-retried-from') => {
    if (!backup) {
      (header === 'x-canary-hedged-from' ? deps.metrics.canaryHedges : deps.metrics.canaryRetries).labels(name).inc();
      backupT0 = performance.now();
      backup = attempt(route.baseline, 'baseline', baselineCtl, false, { [header]: canary.version }, claim('baseline'));
    }
    return backup;
  };
  const delay = resend.hedge ? hedgeDelay(route.settings, deps.latency, name) : null;
  const timer = delay === null ? null : setTimeout(() => startBackup('x-canary-hedged-from'), delay);

  deps.inFlight.add(name, 1);
  const t0 = performance.now();
  const result = await attempt(canary, 'canary', canaryCtl, resend.retry, {}, claim('canary'));
  const canaryMs = performance.now() - t0;
  deps.inFlight.add(name, -1);
  if (timer) clearTimeout(timer);

  const lostRace = canaryCtl.why === 'lost';
  // Lost to the hedge: "at least canaryMs slow", a latency event the latency rules see (auto
  // hedging waits past both latency limits); not a model error, which the baseline could never incur.
  const outcome: Outcome = lostRace ? 'hedge_lost' : result.outcome;
  deps.outcomes.attempt({
    deployment: name,
    upstream: canary,
    role: 'canary',
    kind: 'routed',
    outcome,
    latencyMs: canaryMs,
    ownBodyLimit: isOwnBodyTooLarge(result),
    tableVersion,
    stream: result.stream,
    grpc: result.grpc,
    keyGroup,
  });

  if (!lostRace && (result.responded || !isModelError(result.outcome)))
    return { result, role: 'canary', upstream: canary };
  const canRetry = resend.retry && (resend.replay?.replayable ?? true);
  if (!backup && canRetry && !client.aborted) startBackup('x-canary-retried-from');
  if (!backup) return { result, role: 'canary', upstream: canary };
  const b = (await backup) as ForwardResult;
  const latencyMs = performance.now() - backupT0;
  deps.outcomes.attempt({
    deployment: name,
    upstream: route.baseline,
    role: 'baseline',
    kind: 'backup',
    outcome: b.outcome,
    latencyMs,
    ...(isModelError(outcome) ? { retryOf: canary.version } : {}),
    stream: b.stream,
    grpc: b.grpc,
  });
  return { result: b, role: 'baseline', upstream: route.baseline };
}

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

/** Sends a request's upstream attempts (request/attempts.ts). */
export interface AttemptSender {
  /** One attempt: to whom, as which role, cancelled by `signal`. */
  send(
    to: Upstream,
    as: Role,
    signal: Cancel,
    discardServerErrors: boolean,
    extra?: Record<string, string>,
    claim?: () => boolean,
  ): Promise<ForwardResult>;
}

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
  attempts: AttemptSender,
  client: Cancel,
  tableVersion: number,
  keyGroup?: number,
): Promise<{ result: ForwardResult; role: Role; upstream: Upstream }> {
  const name = route.name;
  const race = new Race(deps, route, canary, attempts);
  if (client.aborted) race.onClient();
  else client.on('abort', race.onClient); // emitted once
  const delay = resend.hedge ? hedgeDelay(route.settings, deps.latency, name) : null;
  const timer = delay === null ? null : setTimeout(startHedge, delay, race);

  deps.inFlight.add(name, 1);
  const t0 = performance.now();
  const result = await attempts.send(canary, 'canary', race.canaryCtl, resend.retry, undefined, race.claimCanary);
  const canaryMs = performance.now() - t0;
  deps.inFlight.add(name, -1);
  if (timer) clearTimeout(timer);

  const lostRace = race.canaryCtl.why === 'lost';
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
  if (!race.backup && canRetry && !client.aborted) race.startBackup('x-canary-retried-from');
  if (!race.backup) return { result, role: 'canary', upstream: canary };
  const b = await race.backup;
  const latencyMs = performance.now() - race.backupT0;
  deps.outcomes.attempt({
    deployment: name,
    upstream: route.baseline,
    role: 'baseline',
    kind: 'backup',
    outcome: b.outcome,
    latencyMs,
    retryOf: isModelError(outcome) ? canary.version : undefined,
    stream: b.stream,
    grpc: b.grpc,
  });
  return { result: b, role: 'baseline', upstream: route.baseline };
}

function startHedge(race: Race): void {
  race.startBackup('x-canary-hedged-from');
}

/**
 * The canary attempt and its backup on the baseline (a retry, or a hedge racing it): whichever
 * answers first claims the client and cancels the other. One object per canary request, its
 * callbacks bound once (no closures per request).
 */
class Race {
  readonly canaryCtl = new Cancel();
  readonly baselineCtl = new Cancel();
  winner: Role | null = null;
  backup: Promise<ForwardResult> | null = null;
  backupT0 = 0;
  readonly claimCanary: () => boolean;
  readonly claimBaseline: () => boolean;
  /** The client went away: both attempts end. */
  readonly onClient: () => void;

  constructor(
    private readonly deps: SafetyNetDeps,
    private readonly route: DeploymentRoute,
    private readonly canary: Upstream,
    private readonly attempts: AttemptSender,
  ) {
    this.claimCanary = this.claim.bind(this, 'canary');
    this.claimBaseline = this.claim.bind(this, 'baseline');
    this.onClient = this.cancelBoth.bind(this);
  }

  private cancelBoth(): void {
    this.canaryCtl.cancel('client');
    this.baselineCtl.cancel('client');
  }

  /** The first attempt to answer takes the client; the other is cancelled. */
  private claim(r: Role): boolean {
    if (this.winner === null) {
      this.winner = r;
      (r === 'canary' ? this.baselineCtl : this.canaryCtl).cancel('lost');
    }
    return this.winner === r;
  }

  startBackup(header: 'x-canary-hedged-from' | 'x-canary-retried-from'): Promise<ForwardResult> {
    if (!this.backup) {
      const { metrics } = this.deps;
      (header === 'x-canary-hedged-from' ? metrics.canaryHedges : metrics.canaryRetries).labels(this.route.name).inc();
      this.backupT0 = performance.now();
      this.backup = this.attempts.send(
        this.route.baseline,
        'baseline',
        this.baselineCtl,
        false,
        { [header]: this.canary.version },
        this.claimBaseline,
      );
    }
    return this.backup;
  }
}

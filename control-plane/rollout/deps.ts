import type { AddressPolicy } from '../../common/address-policy.js';
import type { Logger } from '../../common/logger.js';
import type { DisagreementExample, VersionStats } from '../../proxy/contract/stats.js';
import type { Trip } from '../../proxy/contract/trip.js';
import type { MetricsSource } from '../metrics/source.js';
import type { Policy } from '../model/policy.js';
import type { BusinessOutcomes, Decision } from '../model/verdict.js';
import type { RoutePublisher } from '../publish/route-publisher.js';
import type { FeedbackStore } from '../state/feedback-store.js';
import type { ControlStore } from '../state/store.js';
import type { EventRow } from '../state/types.js';
import type { ControlPlaneMetrics } from '../telemetry.js';

// The rollout core's dependencies and the shapes its callers pass and get back.

/** The PostgreSQL lease whose holder runs the analyses (one leader among replicas). */
export const ANALYSIS_LEASE = 'analysis';

/** What the rollout core runs on: stores, the data planes it programs, metrics, clock. */
export interface RolloutDeps {
  store: ControlStore;
  publisher: RoutePublisher;
  /** The proxies' windowed stats (policy.metrics "proxy"). */
  metrics: MetricsSource;
  /** Where proxies report the canaries they tripped (the stats store). */
  trips?: { takeTrips(): Promise<Trip[]> };
  /** Disagreement examples the proxies keep for shadowed canaries (the stats store). */
  examples?: { examples(deployment: string, version: string): Promise<DisagreementExample[]> };
  /** Prometheus, when configured (policy.metrics "prometheus"). */
  prometheus?: MetricsSource | null;
  /** Business outcomes joined to predictions (POST /v1/feedback). */
  feedback: FeedbackStore;
  logger: Logger;
  /** The base every policy starts from (DEFAULT_POLICY with the configured metrics source). */
  defaultPolicy?: Policy;
  /** Called with the events of each committed change (alerts); never awaited. */
  onEvents?: (events: EventRow[]) => void;
  /** Where version URLs may point (server-side request forgery defence); none: anywhere. */
  policy?: AddressPolicy;
  /** The control plane's own Prometheus metrics. */
  telemetry?: ControlPlaneMetrics;
  /** Injectable clock (ms) for tests; Date.now by default. */
  now?: () => number;
}

/** One analysis as the API returns it (POST /evaluate): the verdict, its evidence, and whether it was applied. */
export interface EvaluateResult {
  deployment: string;
  canaryVersion: string;
  verdict: Decision['verdict'];
  reasons: string[];
  actions: Decision['actions'];
  /** Each rule's evidence: estimates, bounds, e-value and p-value, n, and what a decision still needs. */
  rules: Decision['rules'];
  needs: Decision['needs'] | null;
  weight: number;
  baseline: VersionStats | null;
  canary: VersionStats | null;
  /** Business outcomes per variant with the test's result, when feedback arrives. */
  business: BusinessOutcomes | null;
  /** false when the canary changed while it was measured, or leadership was lost: nothing applied. */
  applied: boolean;
}

/**
 * What a mutation's caller saw: the deployment's revision (If-Match) and the canary it means
 * (`{canary: "v3"}` in the body). A stale revision is 412, another canary 409; nothing changes.
 */
export interface Precondition {
  ifMatch?: number | null;
  canary?: string;
  /** The change deletes the deployment: no revision to bump after it. */
  deleted?: boolean;
}

/** What the unit of work needs (a subset of RolloutDeps). */
export type ChangeDeps = Pick<RolloutDeps, 'store' | 'publisher' | 'logger' | 'onEvents'>;
/** What the stats reads need (a subset of RolloutDeps). */
export type MeasureDeps = Pick<RolloutDeps, 'metrics' | 'prometheus' | 'feedback'>;

/** What every part of the rollout core reads its store and clock from. */
export abstract class RolloutPart {
  constructor(protected readonly deps: RolloutDeps) {}
  protected get store(): ControlStore {
    return this.deps.store;
  }
  protected now(): number {
    return (this.deps.now ?? Date.now)();
  }
}

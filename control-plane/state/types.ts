import type { Policy } from '../model/policy.js';
import type { CanaryProgress } from '../model/progress.js';
import type { DeploymentSettings } from '../model/settings.js';
import type { Decision, RuleEvidence, Verdict } from '../model/verdict.js';

/** decide()'s memory of a canary between analyses, kept in canaries.analysis_state. */
export type AnalysisState = Pick<
  CanaryProgress,
  | 'strata'
  | 'limits'
  | 'lastStep'
  | 'p99BreachSince'
  | 'businessBreachSince'
  | 'phase'
  | 'warmedAt'
  | 'awaitingApproval'
>;

export type DeploymentStatus = 'stable' | 'progressing' | 'paused';
export type VersionState = 'registered' | 'canary' | 'serving' | 'retired' | 'rolled_back';

export const EVENT_TYPES = [
  'deployment_created',
  'version_registered',
  'canary_started',
  'traffic_adjusted',
  'step_advanced',
  'analysis_failed',
  'promoted',
  'auto_promote_triggered',
  'rolled_back',
  'auto_rollback_triggered',
  'paused',
  'resumed',
  'settings_changed',
  'deployment_deleted',
  'version_deleted',
  /** A proxy took a grossly failing canary off live traffic on its own (proxy/split/trips.ts). */
  'proxy_tripped',
  /** The shadow phase (policy.shadow): begun; its gate passed (the canary goes live); failed (rolled back before any user got an answer from it). */
  'shadow_started',
  'shadow_passed',
  'shadow_failed',
  /** Global (deployment "*"): a control-plane replica became the analysis leader. */
  'leader_changed',
  /** The canary's share of routed requests is off its weight: decisions held (rules/sample-ratio.ts). */
  'sample_ratio_mismatch',
  /** policy.approvals: a step or the promotion is ready and waits for a person; a person approved it. */
  'approval_requested',
  'approved',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface CanaryRow {
  id: number;
  deployment: string;
  version: string;
  url: string;
  baselineVersion: string;
  policy: Policy;
  weight: number;
  stepStartedAt: number;
  startedAt: number;
  endedAt: number | null;
  outcome: 'running' | 'promoted' | 'rolled_back';
  state: AnalysisState;
  lastVerdict: Verdict | null;
  lastAnalysisAt: number | null;
}

export interface DeploymentRow {
  name: string;
  status: DeploymentStatus;
  baselineVersion: string;
  baselineUrl: string;
  defaultPolicy: Record<string, unknown>;
  retryCanaryOnBaseline: boolean;
  /** Data-plane settings in the route table's shape ({} = the proxy's defaults). */
  settings: DeploymentSettings;
  revision: number;
  createdAt: number;
  updatedAt: number;
  canary: CanaryRow | null;
  /** The canary that ran last and has ended (how, when, and the reason recorded for it). */
  lastCanary: { version: string; outcome: string; endedAt: number | null; reason: string | null } | null;
}

export interface VersionRow {
  deployment: string;
  version: string;
  url: string;
  metadata: Record<string, unknown>;
  state: VersionState;
  registeredAt: number;
  servedFrom: number | null;
  servedUntil: number | null;
  healthy: boolean | null;
  lastProbeAt: number | null;
  lastProbeError: string | null;
}

export interface EventRow {
  id: number;
  deployment: string;
  type: EventType;
  actor: string;
  reason: string | null;
  before: unknown;
  after: unknown;
  /** The version the event concerns (null: the deployment's, e.g. leader_changed). */
  version: string | null;
  at: number;
}

export interface AnalysisRow {
  id: number;
  canaryId: number;
  deployment: string;
  at: number;
  verdict: Verdict;
  reasons: string[];
  baselineStats: unknown;
  canaryStats: unknown;
  weight: number;
  action: string;
  actor: string;
  /** Per-rule evidence and, when inconclusive, what a decision still needs. */
  rules: RuleEvidence[];
  needs: Decision['needs'] | null;
}

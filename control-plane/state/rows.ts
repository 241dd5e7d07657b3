import type pg from 'pg';
import { DEFAULT_POLICY, type Policy } from '../model/policy.js';
import type { AnalysisRow, AnalysisState, CanaryRow, DeploymentRow, EventRow, VersionRow } from './types.js';
/** Rows as PostgreSQL returns them, turned into the control plane's types (and the SELECT that reads a deployment whole). */

export const ms = (d: Date | null) => (d ? d.getTime() : null);

/** A stored policy with fields added since it was stored filled in from today's defaults. */
export const withPolicyDefaults = (p: Policy): Policy => ({
  ...DEFAULT_POLICY,
  ...p,
  thresholds: { ...DEFAULT_POLICY.thresholds, ...p.thresholds },
});

export function toState(s: pg.QueryResultRow | null | undefined): AnalysisState {
  const num = (v: unknown) => (v == null ? null : Number(v));
  return {
    strata: s?.strata ?? [],
    limits: s?.limits ?? null,
    lastStep: s?.lastStep ?? null,
    p99BreachSince: num(s?.p99BreachSince),
    businessBreachSince: num(s?.businessBreachSince),
    ...(s?.phase === 'shadow' ? { phase: 'shadow' as const } : {}),
    ...(s?.warmedAt != null ? { warmedAt: Number(s.warmedAt) } : {}),
    ...(s?.awaitingApproval ? { awaitingApproval: s.awaitingApproval } : {}),
  };
}

/** The route's shadow while the canary is in its shadow phase. */
export function toCanary(r: pg.QueryResultRow): CanaryRow {
  return {
    id: Number(r.id),
    deployment: r.deployment,
    version: r.version,
    url: r.url,
    baselineVersion: r.baseline_version,
    policy: withPolicyDefaults(r.policy),
    weight: r.weight,
    stepStartedAt: r.step_started_at.getTime(),
    startedAt: r.started_at.getTime(),
    endedAt: ms(r.ended_at),
    outcome: r.outcome,
    state: toState(r.analysis_state),
    lastVerdict: r.last_verdict,
    lastAnalysisAt: ms(r.last_analysis_at),
  };
}

export function toVersion(r: pg.QueryResultRow): VersionRow {
  return {
    deployment: r.deployment,
    version: r.version,
    url: r.url,
    metadata: r.metadata,
    state: r.state,
    registeredAt: r.registered_at.getTime(),
    servedFrom: ms(r.served_from),
    servedUntil: ms(r.served_until),
    healthy: r.healthy,
    lastProbeAt: ms(r.last_probe_at),
    lastProbeError: r.last_probe_error,
  };
}

export const toEvent = (r: pg.QueryResultRow): EventRow => ({
  id: Number(r.id),
  deployment: r.deployment,
  type: r.type,
  actor: r.actor,
  reason: r.reason,
  before: r.before,
  after: r.after,
  version: r.version ?? null,
  at: r.at.getTime(),
});

export const toAnalysis = (r: pg.QueryResultRow): AnalysisRow => ({
  id: Number(r.id),
  canaryId: Number(r.canary_id),
  deployment: r.deployment,
  at: r.at.getTime(),
  verdict: r.verdict,
  reasons: r.reasons,
  baselineStats: r.baseline_stats,
  canaryStats: r.canary_stats,
  weight: r.weight,
  action: r.action,
  actor: r.actor,
  rules: r.evidence?.rules ?? [],
  needs: r.evidence?.needs ?? null,
});

export const DEPLOYMENT_SELECT = `
  SELECT d.*, v.url AS baseline_url, row_to_json(c.*) AS canary_json, row_to_json(last.*) AS last_canary_json
    FROM deployments d
    JOIN versions v ON v.deployment = d.name AND v.version = d.baseline_version
    LEFT JOIN canaries c ON c.deployment = d.name AND c.outcome = 'running'
    LEFT JOIN LATERAL (
      SELECT lc.version, lc.outcome, lc.ended_at,
             (SELECT e.reason FROM events e
               WHERE e.deployment = d.name AND e.version = lc.version AND e.type IN ('rolled_back', 'promoted')
               ORDER BY e.id DESC LIMIT 1) AS reason
        FROM canaries lc
       WHERE lc.deployment = d.name AND lc.outcome <> 'running'
       ORDER BY lc.id DESC LIMIT 1) last ON true`;

export function toDeployment(r: pg.QueryResultRow): DeploymentRow {
  const c = r.canary_json;
  const last = r.last_canary_json;
  return {
    lastCanary: last
      ? {
          version: last.version,
          outcome: last.outcome,
          endedAt: last.ended_at ? new Date(last.ended_at).getTime() : null,
          reason: last.reason ?? null,
        }
      : null,
    name: r.name,
    status: r.status,
    baselineVersion: r.baseline_version,
    baselineUrl: r.baseline_url,
    defaultPolicy: r.default_policy,
    retryCanaryOnBaseline: r.retry_canary_on_baseline,
    settings: r.settings ?? {},
    revision: Number(r.revision),
    createdAt: r.created_at.getTime(),
    updatedAt: r.updated_at.getTime(),
    canary: c
      ? toCanary({
          ...c,
          step_started_at: new Date(c.step_started_at),
          started_at: new Date(c.started_at),
          ended_at: c.ended_at && new Date(c.ended_at),
          last_analysis_at: c.last_analysis_at && new Date(c.last_analysis_at),
        })
      : null,
  };
}

/**
 * The version an event's own record names: a canary's (by name, or in the stats an analysis
 * records), a registered one, or a new deployment's baseline.
 */
export function versionNamed(before: unknown, after: unknown): string | null {
  const b = (before ?? {}) as Record<string, unknown>,
    a = (after ?? {}) as Record<string, unknown>;
  const of = (v: unknown) => (typeof v === 'object' && v !== null ? (v as { version?: unknown }).version : v);
  for (const v of [of(a.canary), of(b.canary), a.version, of(a.baseline)]) if (typeof v === 'string') return v;
  return null;
}

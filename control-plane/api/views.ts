import { DEFAULTS } from '../../common/config.js';
import { parseDuration } from '../../common/duration.js';
import { policyToApi, resolvePolicy } from '../model/policy.js';
import { settingsToApi } from '../model/settings.js';
import { nextStep } from '../rollout/decide.js';

/** What a proxy uses when a deployment does not set its own timeouts. */
const PROXY_DEFAULTS = {
  headersTimeoutMs: parseDuration(DEFAULTS.upstreamTimeout, 'upstreamTimeout'),
  idleTimeoutMs: parseDuration(DEFAULTS.upstreamBodyTimeout, 'upstreamBodyTimeout'),
};

import type { AnalysisRow, CanaryRow, DeploymentRow, EventRow, VersionRow } from '../state/types.js';

/** The API's JSON shapes (DESIGN.md §3). Times are ISO-8601 strings. */
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * policy.approvals: what waits for POST …/approve ("step" | "promote", else null), since when,
 * and the evidence that made it ready (the weight it goes to, canary requests judged, reasons).
 */
function awaitingView(c: CanaryRow) {
  const a = c.state.awaitingApproval;
  return {
    awaitingApproval: a?.kind ?? null,
    awaitingSince: a ? iso(a.since) : null,
    approvalEvidence: a
      ? { weight: a.kind === 'step' ? a.weight : 100, canaryRequests: a.canaryRequests, reasons: a.reasons }
      : null,
  };
}

export function canaryView(c: CanaryRow) {
  return {
    id: c.id,
    version: c.version,
    url: c.url,
    weight: c.weight,
    baselineVersion: c.baselineVersion,
    steps: c.policy.steps,
    nextStep: c.state.phase === 'shadow' ? c.policy.steps[0] : nextStep(c.policy, c.weight),
    /** "shadow": mirrored requests only, no user answered by it yet; "live": on the split. */
    phase: c.state.phase === 'shadow' ? 'shadow' : 'live',
    startedAt: iso(c.startedAt),
    stepStartedAt: iso(c.stepStartedAt),
    endedAt: iso(c.endedAt),
    outcome: c.outcome,
    lastVerdict: c.lastVerdict,
    lastAnalysisAt: iso(c.lastAnalysisAt),
    ...awaitingView(c),
  };
}

export function deploymentView(d: DeploymentRow) {
  const policy = d.canary ? d.canary.policy : resolvePolicy(d.defaultPolicy);
  return {
    name: d.name,
    status: d.status,
    revision: d.revision,
    baseline: { version: d.baselineVersion, url: d.baselineUrl },
    canary: d.canary ? canaryView(d.canary) : null,
    lastCanary: d.lastCanary && { ...d.lastCanary, endedAt: iso(d.lastCanary.endedAt) },
    policy: policyToApi(policy),
    ...settingsToApi(d.settings, d.retryCanaryOnBaseline, PROXY_DEFAULTS),
    createdAt: iso(d.createdAt),
    updatedAt: iso(d.updatedAt),
  };
}

export function versionView(v: VersionRow) {
  return {
    version: v.version,
    url: v.url,
    state: v.state,
    metadata: v.metadata,
    registeredAt: iso(v.registeredAt),
    servedFrom: iso(v.servedFrom),
    servedUntil: iso(v.servedUntil),
    healthy: v.healthy,
    lastProbeAt: iso(v.lastProbeAt),
    lastProbeError: v.lastProbeError,
  };
}

export const eventView = (e: EventRow) => ({
  id: e.id,
  type: e.type,
  actor: e.actor,
  reason: e.reason,
  version: e.version,
  before: e.before,
  after: e.after,
  at: iso(e.at),
});

export const analysisView = (a: AnalysisRow) => ({
  id: a.id,
  at: iso(a.at),
  verdict: a.verdict,
  reasons: a.reasons,
  weight: a.weight,
  action: a.action,
  actor: a.actor,
  baseline: a.baselineStats,
  canary: a.canaryStats,
  rules: a.rules,
  needs: a.needs,
});

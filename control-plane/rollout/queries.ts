import { CanaryError } from '../../common/errors.js';
import { DEFAULT_STATS_TTL_S } from '../../proxy/contract/redis-stats-store.js';
import { policyToApi } from '../model/policy.js';
import type { ControlStore } from '../state/store.js';
import type { DeploymentRow } from '../state/types.js';
import { RolloutPart } from './deps.js';

/** The read models: deployments, versions, events, analyses, agreement — no writes. */
export class Queries extends RolloutPart {
  getDeployment(name: string): Promise<DeploymentRow> {
    return deploymentOrThrow(this.store, name);
  }

  async analysis(name: string, limit = 50) {
    await deploymentOrThrow(this.store, name);
    const canary = await this.store.lastCanary(name);
    const history = canary ? await this.store.analyses(name, limit, canary.id) : [];
    return { deployment: name, canary, latest: history[0] ?? null, history };
  }

  /**
   * The shadow phase of the deployment's current (or last) canary: agreement counts over the
   * phase, the baseline's noise floor, agreement over time (from the analyses), and the kept
   * disagreement examples.
   */
  async agreement(name: string) {
    await deploymentOrThrow(this.store, name);
    const c = await this.store.lastCanary(name);
    if (!c?.policy.shadow)
      return {
        deployment: name,
        canary: c ? { version: c.version, phase: null } : null,
        shadow: null,
        counts: null,
        noise: null,
        rule: null,
        history: [],
        examples: [],
      };
    const inShadow = c.outcome === 'running' && c.state.phase === 'shadow';
    const shadowStratum = c.state.strata?.find((s) => s.weight === 0);
    const to = inShadow ? this.now() : (shadowStratum?.to ?? c.endedAt ?? this.now());
    // From the canary's first second (shadow counts exist only for it, so unlike a step's stats
    // nothing from before is mixed in); cells live 2 hours (DEFAULT_STATS_TTL_S), so a longer
    // shadow phase is counted over its last 2 hours.
    const from = Math.max(Math.floor(c.startedAt / 1000) * 1000, to - DEFAULT_STATS_TTL_S * 1000);
    const [canary, baseline] = await Promise.all([
      this.deps.metrics.versionStats(name, c.version, from, to),
      this.deps.metrics.versionStats(name, c.baselineVersion, from, to),
    ]);
    const counts = canary.agreement,
      noise = baseline.agreement;
    const analyses = await this.store.analyses(name, 1000, c.id);
    const history = analyses
      .map((a) => ({ at: a.at, rule: a.rules.find((r) => r.rule === 'agreement') }))
      .filter((h) => h.rule)
      .reverse()
      .map(({ at, rule }) => ({
        at: new Date(at).toISOString(),
        agreement: rule!.canary?.estimate ?? null,
        lowerBound: rule!.canary?.low ?? null,
        noiseFloor: rule!.baseline && rule!.baseline.n > 0 ? rule!.baseline.estimate : null,
        compared: rule!.canary?.n ?? 0,
      }));
    const latest = analyses.find((a) => a.rules.some((r) => r.rule === 'agreement'));
    return {
      deployment: name,
      canary: {
        version: c.version,
        baselineVersion: c.baselineVersion,
        phase: inShadow ? 'shadow' : c.outcome === 'running' ? 'live' : 'ended',
        outcome: c.outcome,
      },
      shadow: policyToApi(c.policy).shadow,
      counts: counts && {
        ...counts,
        disagreed: counts.compared - counts.agreed,
        agreement: counts.compared > 0 ? counts.agreed / counts.compared : null,
      },
      noise: noise && {
        compared: noise.noiseCompared,
        agreed: noise.noiseAgreed,
        agreement: noise.noiseCompared > 0 ? noise.noiseAgreed / noise.noiseCompared : null,
      },
      rule: latest?.rules.find((r) => r.rule === 'agreement') ?? null,
      history,
      examples: (await this.deps.examples?.examples(name, c.version)) ?? [],
    };
  }

  async events(name: string, limit: number, version?: string) {
    await deploymentOrThrow(this.store, name);
    return this.store.events(name, limit, version);
  }

  async versions(name: string) {
    await deploymentOrThrow(this.store, name);
    return this.store.listVersions(name);
  }

  listDeployments() {
    return this.store.listDeployments();
  }
}

/** The deployment, or DEPLOYMENT_NOT_FOUND (404). */
export async function deploymentOrThrow(store: ControlStore, name: string): Promise<DeploymentRow> {
  const d = await store.getDeployment(name);
  if (!d) throw new CanaryError('DEPLOYMENT_NOT_FOUND', `no deployment named ${JSON.stringify(name)}`);
  return d;
}

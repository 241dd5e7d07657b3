import type pg from 'pg';
import { CanaryError } from '../../../common/errors.js';
import { type Policy, resolvePolicy } from '../../model/policy.js';
import type { DeploymentRow } from '../../state/types.js';
import type { Changes } from '../changes.js';
import { foldStep } from '../decide.js';
import { type Precondition, type RolloutDeps, RolloutPart } from '../deps.js';
import type { Measure } from '../measure.js';
import { progressOf, stateOf } from '../progress-state.js';
import { deploymentOrThrow } from '../queries.js';
import { autoStartWeight } from '../sizing.js';
import type { Transitions } from '../transitions.js';
import { allowedUrl, checkName, checkUrl } from '../validation.js';

/** What people do to a deployment's canary: start, set its weight, pause, promote, roll back. */
export class CanaryCommands extends RolloutPart {
  constructor(
    deps: RolloutDeps,
    private readonly changes: Changes,
    private readonly transitions: Transitions,
    private readonly measure: Measure,
  ) {
    super(deps);
  }

  /**
   * A version that was rolled back, or whose last canary was judged critical, is used again
   * (as a canary, or as the baseline by rollback) only when the caller says `force: true`;
   * the event records that it was forced. Returns whether it was forced.
   */
  private async checkNotFailed(
    q: pg.PoolClient,
    deployment: string,
    v: { version: string; state: string },
    force: boolean | undefined,
    use: string,
  ): Promise<boolean> {
    const last = await this.store.lastCanaryOf(deployment, v.version, q);
    const why =
      v.state === 'rolled_back'
        ? 'was rolled back'
        : last?.lastVerdict === 'critical'
          ? 'was last judged critical'
          : null;
    if (!why) return false;
    if (force !== true)
      throw new CanaryError(
        'VERSION_FAILED',
        `version ${v.version} ${why}${last?.endedAt ? ` (${new Date(last.endedAt).toISOString()})` : ''}; to ${use} it anyway, pass force: true (--force)`,
      );
    return true;
  }

  async startCanary(
    name: string,
    body: { version: unknown; url?: unknown; weight?: unknown; policy?: unknown; force?: boolean },
    actor: string,
    pre: Precondition = {},
  ): Promise<DeploymentRow> {
    const version = checkName(body.version, 'version');
    if (body.url !== undefined) await allowedUrl(this.deps.policy, checkUrl(body.url, 'url'), 'url');
    await this.changes.change(
      name,
      async (q, d) => {
        if (d.canary)
          throw new CanaryError(
            'CANARY_RUNNING',
            `canary ${d.canary.version} is already running for ${name}; promote or roll it back first`,
          );
        if (version === d.baselineVersion) throw new CanaryError('BAD_REQUEST', `${version} is already the baseline`);
        const policy = resolvePolicy(body.policy, resolvePolicy(d.defaultPolicy, this.deps.defaultPolicy));
        if (policy.shadow && policy.metrics !== 'proxy')
          throw new CanaryError(
            'BAD_REQUEST',
            'policy.shadow: agreement is computed by canary-mesh proxies only; use policy.metrics "proxy" (an Envoy data plane mirrors, but does not compare)',
          );
        if (policy.metrics === 'prometheus' && !this.deps.prometheus)
          throw new CanaryError(
            'BAD_REQUEST',
            'policy.metrics: "prometheus" needs CANARY_PROMETHEUS_URL on the control plane',
          );
        let v = await this.store.getVersion(name, version, q);
        const url = body.url === undefined ? v?.url : checkUrl(body.url, 'url');
        if (!v) {
          if (!url)
            throw new CanaryError(
              'VERSION_NOT_FOUND',
              `version ${version} is not registered; register it or pass its url`,
            );
          await this.store.insertVersion(q, name, version, url, {}, 'registered');
          await this.changes.event(q, name, 'version_registered', actor, null, null, { version, url });
          v = (await this.store.getVersion(name, version, q))!;
        } else if (url && url !== v.url) {
          throw new CanaryError('VERSION_EXISTS', `version ${version} is registered at ${v.url}, not ${url}`);
        }
        const forced = await this.checkNotFailed(q, name, v, body.force, 'start a canary of');
        // A canary with a shadow policy starts in shadow: weight 0, judged on mirrored requests.
        if (policy.shadow && body.weight !== undefined)
          throw new CanaryError(
            'BAD_REQUEST',
            'weight: a canary with policy.shadow starts in its shadow phase (weight 0) and goes live at its first step through the shadow gate; leave weight out',
          );
        const weight = policy.shadow
          ? 0
          : body.weight === undefined
            ? policy.autoSteps
              ? await this.autoWeight(policy, name, d.baselineVersion)
              : policy.steps[0]
            : Number(body.weight);
        if (!(weight >= 0 && weight <= 100))
          throw new CanaryError('BAD_REQUEST', 'weight: expected a number from 0 to 100');
        const c = await this.store.insertCanary(q, {
          deployment: name,
          version,
          url: v.url,
          baselineVersion: d.baselineVersion,
          policy,
          weight,
          at: this.now(),
          state: policy.shadow ? { phase: 'shadow' } : {},
        });
        await this.store.setVersionState(q, name, version, 'canary');
        await this.store.setDeployment(q, name, { status: 'progressing' });
        await this.changes.event(
          q,
          name,
          'canary_started',
          actor,
          null,
          { baseline: d.baselineVersion },
          { canary: version, url: v.url, weight, canaryId: c.id, ...(forced ? { forced: true } : {}) },
        );
        if (policy.shadow) {
          await this.changes.event(q, name, 'shadow_started', actor, null, null, {
            canary: version,
            percent: policy.shadow.percent,
            compare: policy.shadow.compare,
            agreementMin: policy.shadow.agreementMin,
            duration: policy.shadow.durationMs,
          });
        }
      },
      pre,
    );
    return deploymentOrThrow(this.store, name);
  }

  /** steps: "auto": the first weight, from the baseline's traffic over the last window. */
  private async autoWeight(policy: Policy, deployment: string, baselineVersion: string): Promise<number> {
    const now = this.now();
    try {
      const baseline = await this.measure.span(policy, deployment, baselineVersion, now - policy.windowMs, now);
      return autoStartWeight(policy, baseline, policy.windowMs);
    } catch (err) {
      this.deps.logger.warn(
        { err: (err as Error).message, deployment },
        'steps "auto": baseline traffic unknown; starting at the first step',
      );
      return autoStartWeight(policy, null, 0);
    }
  }

  async setTraffic(name: string, weight: unknown, actor: string, pre: Precondition = {}): Promise<DeploymentRow> {
    if (typeof weight !== 'number' || !(weight >= 0 && weight <= 100))
      throw new CanaryError('BAD_REQUEST', 'weight: expected a number from 0 to 100');
    await this.changes.change(
      name,
      async (q, d) => {
        if (!d.canary) throw new CanaryError('NO_CANARY', `no canary is running for ${name}`);
        // A new step: the evidence so far is kept (the step as last analysed becomes a stratum).
        const folded = foldStep(progressOf(d.canary, false), weight, this.now());
        await this.store.setCanaryWeight(q, d.canary.id, weight, this.now(), stateOf(folded));
        await this.changes.event(
          q,
          name,
          'traffic_adjusted',
          actor,
          null,
          { canary: d.canary.version, weight: d.canary.weight },
          { canary: d.canary.version, weight },
        );
      },
      pre,
    );
    return deploymentOrThrow(this.store, name);
  }

  async setPaused(name: string, paused: boolean, actor: string, pre: Precondition = {}): Promise<DeploymentRow> {
    await this.changes.change(
      name,
      async (q, d) => {
        if (!d.canary)
          throw new CanaryError(
            'NO_CANARY',
            `no canary is running for ${name}: nothing to ${paused ? 'pause' : 'resume'}`,
          );
        if ((d.status === 'paused') === paused) return; // idempotent: no second event
        await this.store.setDeployment(q, name, { status: paused ? 'paused' : 'progressing' });
        await this.changes.event(
          q,
          name,
          paused ? 'paused' : 'resumed',
          actor,
          null,
          { status: d.status },
          { status: paused ? 'paused' : 'progressing' },
        );
      },
      pre,
    );
    return deploymentOrThrow(this.store, name);
  }

  /** Canary becomes the baseline; the old baseline is retired but kept ready for rollback. */
  async promote(name: string, reason: string | null, actor: string, pre: Precondition = {}): Promise<DeploymentRow> {
    await this.changes.change(name, (q, d) => this.transitions.promote(q, d, reason, actor, false), pre);
    return deploymentOrThrow(this.store, name);
  }

  /**
   * Rolls back exactly what the caller names, never a guess. By default (target "canary") the
   * running canary: weight 0 and removed at once, the baseline keeps serving; with no canary
   * running that is 409 NO_CANARY — so a rollback racing a promotion can never roll back the
   * baseline the promotion just made. The baseline is rolled back only when asked for
   * (target "baseline" or `toVersion`): to `toVersion`, or by default to the newest earlier
   * version that served and was not itself rolled back — a healthy one if there is one. A
   * failing health probe never blocks a rollback a person asked for (a model server may have
   * no health endpoint, or the probe may be what is broken): it is said in the answer's
   * `warnings` and in the event, and the rollback goes ahead.
   */
  async rollback(
    name: string,
    body: { reason?: string | null; target?: 'canary' | 'baseline'; toVersion?: string; force?: boolean },
    actor: string,
    pre: Precondition = {},
  ): Promise<DeploymentRow & { warnings: string[] }> {
    const reason = body.reason ?? null;
    const toVersion = body.toVersion;
    const warnings: string[] = [];
    const target = toVersion !== undefined ? 'baseline' : (body.target ?? 'canary');
    if (body.target === 'canary' && toVersion !== undefined)
      throw new CanaryError(
        'BAD_REQUEST',
        'toVersion: only with target "baseline" (it names the version the baseline returns to)',
      );
    await this.changes.change(
      name,
      async (q, d) => {
        if (target === 'canary') {
          if (!d.canary)
            throw new CanaryError(
              'NO_CANARY',
              `no canary is running for ${name}: nothing to roll back (to roll back the baseline, ask for it: {"target": "baseline"} or {"toVersion": "..."})`,
            );
          return this.transitions.rollbackCanary(q, d, reason, actor, false);
        }
        if (d.canary)
          throw new CanaryError(
            'CANARY_RUNNING',
            `a canary (${d.canary.version}) is running: roll it back first, then the baseline`,
          );
        const versions = await this.store.listVersions(name, q);
        const earlier = versions
          .filter((v) => v.state === 'retired')
          .sort((a, b) => (b.servedUntil ?? 0) - (a.servedUntil ?? 0));
        const found =
          toVersion === undefined
            ? (earlier.find((v) => v.healthy !== false) ?? earlier[0])
            : versions.find((v) => v.version === toVersion);
        if (toVersion !== undefined && !found)
          throw new CanaryError('VERSION_NOT_FOUND', `version ${toVersion} is not registered for ${name}`);
        if (!found)
          throw new CanaryError('NO_ROLLBACK_TARGET', `no earlier version of ${name} that served to roll back to`);
        if (found.version === d.baselineVersion)
          throw new CanaryError('BAD_REQUEST', `${found.version} is already the baseline`);
        if (found.healthy === false)
          warnings.push(
            `version ${found.version} failed its last health probe (${found.lastProbeError ?? 'unhealthy'}); rolled back to it as asked`,
          );
        const forced = await this.checkNotFailed(q, name, found, body.force, 'make the baseline');
        await this.store.setVersionState(q, name, d.baselineVersion, 'rolled_back');
        await this.store.setVersionState(q, name, found.version, 'serving');
        await this.store.setDeployment(q, name, { baselineVersion: found.version });
        await this.changes.event(
          q,
          name,
          'rolled_back',
          actor,
          reason,
          { target: 'baseline', baseline: d.baselineVersion },
          { baseline: found.version, ...(forced ? { forced: true } : {}), ...(warnings.length ? { warnings } : {}) },
        );
      },
      pre,
    );
    return { ...(await deploymentOrThrow(this.store, name)), warnings };
  }
}

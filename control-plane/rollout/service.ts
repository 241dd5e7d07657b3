import type pg from 'pg';
import { type AddressPolicy, AddressPolicyError } from '../../common/address-policy.js';
import { CanaryError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Trip } from '../../proxy/split/trips.js';
import { DEFAULT_STATS_TTL_S } from '../../proxy/telemetry/redis-stats-store.js';
import { type DisagreementExample, type VersionStats, withoutHistogram } from '../../proxy/telemetry/stats.js';
import { outcomeStats } from '../metrics/business.js';
import type { MetricsSource } from '../metrics/source.js';
import type { RoutePublisher } from '../state/route-publisher.js';
import type { ControlStore } from '../state/store.js';
import type { AnalysisRow, AnalysisState, CanaryRow, DeploymentRow, EventRow, EventType } from '../state/types.js';
import type { ControlPlaneMetrics } from '../telemetry.js';
import { businessTest } from './business.js';
import {
  autoStartWeight,
  type CanaryProgress,
  type Decision,
  decide,
  foldStep,
  grossFailure,
  type StatsInput,
} from './decide.js';
import { type Policy, policyToApi, resolvePolicy } from './policy.js';
import { resolveSettings, type SettingsInput } from './settings.js';

export const ANALYSIS_LEASE = 'analysis';

export interface ServiceDeps {
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
  business: { baseline: unknown; canary: unknown; relativeChange: unknown; pValue: number } | null;
  /** false when the canary changed while it was measured, or leadership was lost: nothing applied. */
  applied: boolean;
}

/**
 * What a mutation's caller saw: the deployment's revision (If-Match) and the canary it means
 * (`{canary: "v3"}` in the body). A stale revision is 412, another canary 409; nothing changes.
 */
export interface Precondition {
  ifMatch?: number | null;
  canary?: string /** The change deletes the deployment: no revision to bump after it. */;
  deleted?: boolean;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function checkUrl(url: unknown, field: string): string {
  if (typeof url !== 'string') throw new CanaryError('BAD_REQUEST', `${field}: expected a URL string`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CanaryError('BAD_REQUEST', `${field}: not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new CanaryError('BAD_REQUEST', `${field}: only http and https model servers are supported`);
  return u.origin;
}

function checkName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME_RE.test(v))
    throw new CanaryError(
      'BAD_REQUEST',
      `${field}: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  return v;
}

/**
 * Every state change of the control plane. Each one is a single transaction holding the
 * deployment's row lock and writing its event; after commit the route table is published.
 * The analysis executor lives here too: evaluate() measures, decide() judges, and the
 * actions are applied with the same primitives a person's API call uses.
 */
export class RolloutService {
  private readonly store: ControlStore;
  private readonly now: () => number;
  /** Events written in the transaction running on each client, announced once it commits. */
  private readonly emitted = new WeakMap<pg.PoolClient, EventRow[]>();
  constructor(private readonly deps: ServiceDeps) {
    this.store = deps.store;
    this.now = deps.now ?? Date.now;
  }

  /** Publishes the current route table; failures are logged and repaired by the reconcile loop. */
  async publishRoutes(): Promise<void> {
    try {
      await this.deps.publisher.publish(await this.store.routeTable());
    } catch (err) {
      this.deps.logger.warn(
        { err: (err as Error).message },
        'route table publish failed; the reconcile loop will retry',
      );
    }
  }

  /**
   * A change to one deployment, optimistic: the revision seen first must still hold under
   * the lock, so of two racing requests the second gets 409 instead of acting on a state
   * it never saw (a rollback meant for a canary must not roll back the new baseline).
   */
  private async change<T>(
    name: string,
    fn: (q: pg.PoolClient, d: DeploymentRow) => Promise<T>,
    pre: Precondition = {},
  ): Promise<T> {
    // With If-Match the caller says which revision it saw; without, the one read just now.
    const ifMatch = pre.ifMatch !== undefined && pre.ifMatch !== null;
    const expectedRevision = ifMatch ? pre.ifMatch : await this.store.revision(name);
    const guarded = async (q: pg.PoolClient, d: DeploymentRow) => {
      if (pre.canary !== undefined && d.canary?.version !== pre.canary) {
        throw new CanaryError(
          'CANARY_MISMATCH',
          `the request is for canary ${pre.canary}, but ${d.canary ? `canary ${d.canary.version} is running` : 'no canary is running'} for ${name}; nothing was changed`,
        );
      }
      return fn(q, d);
    };
    const { out, events } = await this.store.withDeployment(name, this.collecting(guarded), {
      expectedRevision,
      ifMatch,
      bump: pre.deleted ? false : undefined,
    });
    await this.publishRoutes();
    this.announce(events);
    return out;
  }

  /** Wraps a transaction body so the events it writes are returned with its result. */
  private collecting<A extends unknown[], T>(fn: (q: pg.PoolClient, ...rest: A) => Promise<T>) {
    return async (q: pg.PoolClient, ...rest: A) => {
      this.emitted.set(q, []);
      const out = await fn(q, ...rest);
      const events = this.emitted.get(q)!;
      this.emitted.delete(q);
      return { out, events };
    };
  }

  private announce(events: EventRow[]): void {
    if (events.length && this.deps.onEvents) this.deps.onEvents(events);
  }

  /**
   * A replica became the analysis leader: a global event (deployment "*"), written only when
   * the holder changes — a replica that lost and regained the lease through a database outage,
   * with nobody else holding it meanwhile, is not a change (and would alert for nothing).
   */
  async recordLeaderChange(holder: string): Promise<void> {
    const last = await this.store.pool.query(
      `SELECT actor FROM events WHERE deployment = '*' AND type = 'leader_changed' ORDER BY id DESC LIMIT 1`,
    );
    if (last.rows[0]?.actor === holder) return;
    const e = await this.store.insertEvent(this.store.pool, {
      deployment: '*',
      type: 'leader_changed',
      actor: holder,
      reason: `${holder} became the analysis leader`,
      after: { holder },
    });
    this.announce([e]);
  }

  private async event(
    q: pg.PoolClient,
    deployment: string,
    type: EventType,
    actor: string,
    reason: string | null,
    before: unknown,
    after: unknown,
  ) {
    const e = await this.store.insertEvent(q, { deployment, type, actor, reason, before, after });
    this.emitted.get(q)?.push(e);
    return e;
  }

  /** A model server URL must be one canary-mesh may connect to (checked again at every connect by the proxies). */
  private async allowed(url: string, field: string): Promise<string> {
    try {
      await this.deps.policy?.checkUrl(url);
    } catch (err) {
      if (err instanceof AddressPolicyError) throw new CanaryError('UPSTREAM_NOT_ALLOWED', `${field}: ${err.message}`);
      throw err;
    }
    return url;
  }

  async getDeployment(name: string): Promise<DeploymentRow> {
    const d = await this.store.getDeployment(name);
    if (!d) throw new CanaryError('DEPLOYMENT_NOT_FOUND', `no deployment named ${JSON.stringify(name)}`);
    return d;
  }

  async createDeployment(
    body: {
      name: unknown;
      baseline: { version: unknown; url: unknown; metadata?: unknown };
      policy?: unknown;
    } & SettingsInput,
    actor: string,
  ): Promise<DeploymentRow> {
    const name = checkName(body.name, 'name');
    const version = checkName(body.baseline?.version, 'baseline.version');
    const url = await this.allowed(checkUrl(body.baseline?.url, 'baseline.url'), 'baseline.url');
    resolvePolicy(body.policy); // validate now; stored as given and resolved when a canary starts
    const { settings, retryCanaryOnBaseline } = resolveSettings(body, { settings: {}, retryCanaryOnBaseline: true });
    const { events } = await this.store.transaction(
      this.collecting(async (q) => {
        await this.store.insertDeployment(q, name, version, body.policy ?? {}, retryCanaryOnBaseline, settings);
        await this.store.insertVersion(q, name, version, url, body.baseline.metadata, 'serving');
        await this.event(q, name, 'deployment_created', actor, null, null, { baseline: { version, url } });
      }),
    );
    await this.publishRoutes();
    this.announce(events);
    return this.getDeployment(name);
  }

  /** Changes the deployment's data-plane settings (timeouts, hedging, retries, WebSockets); the proxies apply them with the next route table. */
  async updateSettings(
    name: string,
    input: SettingsInput,
    actor: string,
    pre: Precondition = {},
  ): Promise<DeploymentRow> {
    await this.change(
      name,
      async (q, d) => {
        const next = resolveSettings(input, d);
        await this.store.setSettings(q, name, next.settings, next.retryCanaryOnBaseline);
        await this.event(
          q,
          name,
          'settings_changed',
          actor,
          null,
          { settings: d.settings, retryCanaryOnBaseline: d.retryCanaryOnBaseline },
          next,
        );
      },
      pre,
    );
    return this.getDeployment(name);
  }

  /** Deletes a deployment that runs no canary. Its events stay in the audit trail, with a last `deployment_deleted`. */
  async deleteDeployment(name: string, actor: string, pre: Precondition = {}): Promise<void> {
    await this.change(
      name,
      async (q, d) => {
        if (d.canary)
          throw new CanaryError(
            'CANARY_RUNNING',
            `canary ${d.canary.version} is running for ${name}: promote or roll it back before deleting the deployment`,
          );
        await this.event(q, name, 'deployment_deleted', actor, null, { baseline: d.baselineVersion }, null);
        await this.store.deleteDeployment(q, name);
      },
      { ...pre, deleted: true },
    );
  }

  /** Deletes a version that is neither serving nor the running canary. */
  async deleteVersion(name: string, version: string, actor: string, pre: Precondition = {}): Promise<void> {
    await this.change(
      name,
      async (q, d) => {
        const v = await this.store.getVersion(name, version, q);
        if (!v) throw new CanaryError('VERSION_NOT_FOUND', `version ${version} is not registered for ${name}`);
        if (v.version === d.baselineVersion || d.canary?.version === version)
          throw new CanaryError(
            'VERSION_IN_USE',
            `version ${version} is ${v.version === d.baselineVersion ? 'serving as the baseline' : 'the running canary'} of ${name}`,
          );
        await this.store.deleteVersion(q, name, version);
        await this.event(q, name, 'version_deleted', actor, null, { version, url: v.url, state: v.state }, null);
      },
      pre,
    );
  }

  async registerVersion(
    name: string,
    body: { version: unknown; url: unknown; metadata?: unknown },
    actor: string,
    pre: Precondition = {},
  ) {
    const version = checkName(body.version, 'version');
    const url = await this.allowed(checkUrl(body.url, 'url'), 'url');
    if (
      body.metadata !== undefined &&
      (typeof body.metadata !== 'object' || body.metadata === null || Array.isArray(body.metadata))
    ) {
      throw new CanaryError('BAD_REQUEST', 'metadata: expected an object (trainedAt, dataVersion, metrics, …)');
    }
    return this.change(
      name,
      async (q) => {
        const existing = await this.store.getVersion(name, version, q);
        if (existing) {
          if (existing.url !== url)
            throw new CanaryError('VERSION_EXISTS', `version ${version} is already registered at ${existing.url}`);
          return { version: existing, created: false };
        }
        await this.store.insertVersion(q, name, version, url, body.metadata, 'registered');
        await this.event(q, name, 'version_registered', actor, null, null, {
          version,
          url,
          metadata: body.metadata ?? {},
        });
        return { version: (await this.store.getVersion(name, version, q))!, created: true };
      },
      pre,
    );
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
    if (body.url !== undefined) await this.allowed(checkUrl(body.url, 'url'), 'url');
    await this.change(
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
          await this.event(q, name, 'version_registered', actor, null, null, { version, url });
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
        await this.event(
          q,
          name,
          'canary_started',
          actor,
          null,
          { baseline: d.baselineVersion },
          { canary: version, url: v.url, weight, canaryId: c.id, ...(forced ? { forced: true } : {}) },
        );
        if (policy.shadow) {
          await this.event(q, name, 'shadow_started', actor, null, null, {
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
    return this.getDeployment(name);
  }

  /** steps: "auto": the first weight, from the baseline's traffic over the last window. */
  private async autoWeight(policy: Policy, deployment: string, baselineVersion: string): Promise<number> {
    const now = this.now();
    try {
      const baseline = await this.source(policy)?.versionStats(deployment, baselineVersion, now - policy.windowMs, now);
      return autoStartWeight(policy, baseline ?? null, policy.windowMs);
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
    await this.change(
      name,
      async (q, d) => {
        if (!d.canary) throw new CanaryError('NO_CANARY', `no canary is running for ${name}`);
        // A new step: the evidence so far is kept (the step as last analysed becomes a stratum).
        const folded = foldStep(progressOf(d.canary, false), weight, this.now());
        await this.store.setCanaryWeight(q, d.canary.id, weight, this.now(), stateOf(folded));
        await this.event(
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
    return this.getDeployment(name);
  }

  async setPaused(name: string, paused: boolean, actor: string, pre: Precondition = {}): Promise<DeploymentRow> {
    await this.change(
      name,
      async (q, d) => {
        if (!d.canary)
          throw new CanaryError(
            'NO_CANARY',
            `no canary is running for ${name}: nothing to ${paused ? 'pause' : 'resume'}`,
          );
        if ((d.status === 'paused') === paused) return; // idempotent: no second event
        await this.store.setDeployment(q, name, { status: paused ? 'paused' : 'progressing' });
        await this.event(
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
    return this.getDeployment(name);
  }

  /** Canary becomes the baseline; the old baseline is retired but kept ready for rollback. */
  async promote(name: string, reason: string | null, actor: string, pre: Precondition = {}): Promise<DeploymentRow> {
    await this.change(name, (q, d) => this.promoteIn(q, d, reason, actor, false), pre);
    return this.getDeployment(name);
  }

  private async promoteIn(
    q: pg.PoolClient,
    d: DeploymentRow,
    reason: string | null,
    actor: string,
    auto: boolean,
  ): Promise<void> {
    const c = d.canary;
    if (!c) throw new CanaryError('NO_CANARY', `no canary is running for ${d.name}: nothing to promote`);
    if (auto)
      await this.event(q, d.name, 'auto_promote_triggered', actor, reason, { weight: c.weight }, { canary: c.version });
    await this.store.endCanary(q, c.id, 'promoted');
    await this.store.setVersionState(q, d.name, d.baselineVersion, 'retired');
    await this.store.setVersionState(q, d.name, c.version, 'serving');
    await this.store.setDeployment(q, d.name, { status: 'stable', baselineVersion: c.version });
    await this.event(
      q,
      d.name,
      'promoted',
      actor,
      reason,
      { baseline: d.baselineVersion, canary: c.version, weight: c.weight },
      { baseline: c.version },
    );
  }

  /**
   * Rolls back exactly what the caller names, never a guess. By default (target "canary") the
   * running canary: weight 0 and removed at once, the baseline keeps serving; with no canary
   * running that is 409 NO_CANARY — so a rollback racing a promotion can never roll back the
   * baseline the promotion just made. The baseline is rolled back only when asked for
   * (target "baseline" or `toVersion`): to `toVersion`, or by default to the newest earlier
   * version that served, is healthy, and was not itself rolled back.
   */
  async rollback(
    name: string,
    body: { reason?: string | null; target?: 'canary' | 'baseline'; toVersion?: string; force?: boolean },
    actor: string,
    pre: Precondition = {},
  ): Promise<DeploymentRow> {
    const reason = body.reason ?? null;
    const toVersion = body.toVersion;
    const target = toVersion !== undefined ? 'baseline' : (body.target ?? 'canary');
    if (body.target === 'canary' && toVersion !== undefined)
      throw new CanaryError(
        'BAD_REQUEST',
        'toVersion: only with target "baseline" (it names the version the baseline returns to)',
      );
    await this.change(
      name,
      async (q, d) => {
        if (target === 'canary') {
          if (!d.canary)
            throw new CanaryError(
              'NO_CANARY',
              `no canary is running for ${name}: nothing to roll back (to roll back the baseline, ask for it: {"target": "baseline"} or {"toVersion": "..."})`,
            );
          return this.rollbackCanaryIn(q, d, reason, actor, false);
        }
        if (d.canary)
          throw new CanaryError(
            'CANARY_RUNNING',
            `a canary (${d.canary.version}) is running: roll it back first, then the baseline`,
          );
        const versions = await this.store.listVersions(name, q);
        const found =
          toVersion === undefined
            ? versions
                .filter((v) => v.state === 'retired' && v.healthy !== false)
                .sort((a, b) => (b.servedUntil ?? 0) - (a.servedUntil ?? 0))[0]
            : versions.find((v) => v.version === toVersion);
        if (toVersion !== undefined && !found)
          throw new CanaryError('VERSION_NOT_FOUND', `version ${toVersion} is not registered for ${name}`);
        if (!found)
          throw new CanaryError('NO_ROLLBACK_TARGET', `no earlier healthy version of ${name} to roll back to`);
        if (found.version === d.baselineVersion)
          throw new CanaryError('BAD_REQUEST', `${found.version} is already the baseline`);
        if (found.healthy === false)
          throw new CanaryError(
            'NO_ROLLBACK_TARGET',
            `version ${found.version} failed its last health probe (${found.lastProbeError ?? 'unhealthy'})`,
          );
        const forced = await this.checkNotFailed(q, name, found, body.force, 'make the baseline');
        await this.store.setVersionState(q, name, d.baselineVersion, 'rolled_back');
        await this.store.setVersionState(q, name, found.version, 'serving');
        await this.store.setDeployment(q, name, { baselineVersion: found.version });
        await this.event(
          q,
          name,
          'rolled_back',
          actor,
          reason,
          { target: 'baseline', baseline: d.baselineVersion },
          { baseline: found.version, ...(forced ? { forced: true } : {}) },
        );
      },
      pre,
    );
    return this.getDeployment(name);
  }

  private async rollbackCanaryIn(
    q: pg.PoolClient,
    d: DeploymentRow,
    reason: string | null,
    actor: string,
    auto: boolean,
    evidence?: unknown,
  ): Promise<void> {
    const c = d.canary!;
    if (auto)
      await this.event(
        q,
        d.name,
        'auto_rollback_triggered',
        actor,
        reason,
        { weight: c.weight },
        { weight: 0, evidence },
      );
    await this.store.endCanary(q, c.id, 'rolled_back');
    await this.store.setVersionState(q, d.name, c.version, 'rolled_back');
    await this.store.setDeployment(q, d.name, { status: 'stable' });
    await this.event(
      q,
      d.name,
      'rolled_back',
      actor,
      reason,
      { target: 'canary', canary: c.version, weight: c.weight },
      { canary: null, weight: 0, baseline: d.baselineVersion },
    );
  }

  // ── analysis ─────────────────────────────────────────────────────────────────────

  private source(policy: Policy): MetricsSource | null {
    return (policy.metrics ?? 'proxy') === 'prometheus' ? (this.deps.prometheus ?? null) : this.deps.metrics;
  }

  /**
   * The current step's stats per variant over [the second after the step began, now] — the
   * boundary second mixes two weights and belongs to neither step — plus, while the step's
   * latency limits are not fixed, the baseline over the window before the step.
   */
  private async measure(c: CanaryRow, baselineVersion: string, to: number): Promise<StatsInput> {
    const source = this.source(c.policy);
    if (!source)
      return { error: 'policy.metrics is "prometheus" but no Prometheus is configured (CANARY_PROMETHEUS_URL)' };
    const from = stepReadFrom(c.stepStartedAt);
    try {
      const [baseline, canary, reference] = await Promise.all([
        source.versionStats(c.deployment, baselineVersion, from, to),
        source.versionStats(c.deployment, c.version, from, to),
        c.state.limits
          ? null
          : source.versionStats(c.deployment, baselineVersion, c.stepStartedAt - c.policy.windowMs, from - 1000),
      ]);
      // Business outcomes count from the canary's start: unlike errors they do not depend on the weight.
      const [bOut, cOut] = await Promise.all([
        outcomeStats(this.store.pool, c.deployment, baselineVersion, c.startedAt, to),
        outcomeStats(this.store.pool, c.deployment, c.version, c.startedAt, to),
      ]);
      return { baseline, canary, reference, business: bOut.n + cOut.n > 0 ? { baseline: bOut, canary: cOut } : null };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /**
   * The fast path, run at every tick (about once a stats flush): only the absolute error-rate
   * test, on the canary's counts. When it rejects, the full analysis runs at once, so a
   * grossly failing canary does not wait for the next interval. Returns true if it ran one.
   */
  async checkGrossFailure(c: CanaryRow, leaseHolder?: string): Promise<boolean> {
    // Already judged critical and still running (paused, or autoRollback off): the regular
    // analysis keeps recording it; analysing again every second would only add rows.
    if (c.lastVerdict === 'critical') return false;
    const source = this.source(c.policy);
    if (!source) return false;
    const now = this.now();
    let canary: VersionStats;
    try {
      canary = await source.versionStats(c.deployment, c.version, stepReadFrom(c.stepStartedAt), now);
    } catch {
      return false; // the interval analysis reports metrics errors
    }
    if (grossFailure(progressOf(c, false), c.policy, canary).status !== 'fail') return false;
    await this.evaluate(c.deployment, 'analysis', leaseHolder);
    return true;
  }

  /**
   * One analysis of a deployment's running canary: measure, decide, record, act.
   * With `leaseHolder`, the writes commit only while that holder still has the analysis
   * lease, so a replica that lost leadership mid-analysis changes nothing.
   */
  async evaluate(name: string, actor: string, leaseHolder?: string): Promise<EvaluateResult> {
    const d = await this.getDeployment(name);
    const c = d.canary;
    if (!c) throw new CanaryError('NO_CANARY', `no canary is running for ${name}: nothing to evaluate`);
    const now = this.now();
    const timer = this.deps.telemetry?.analysisSeconds.startTimer();
    const stats = await this.measure(c, d.baselineVersion, now);
    const decision = decide(progressOf(c, d.status === 'paused'), c.policy, stats, now);
    const ok = !('error' in stats);
    const result: EvaluateResult = {
      deployment: name,
      canaryVersion: c.version,
      verdict: decision.verdict,
      reasons: decision.reasons,
      actions: decision.actions,
      rules: decision.rules,
      needs: decision.needs ?? null,
      weight: c.weight,
      baseline: ok ? withoutHistogram(stats.baseline) : null,
      canary: ok ? withoutHistogram(stats.canary) : null,
      applied: false,
      business: null,
    };
    if (ok && stats.business) {
      const t = businessTest(
        stats.business.baseline,
        stats.business.canary,
        c.policy.businessDropMax,
        c.policy.confidence,
      );
      result.business = {
        baseline: stats.business.baseline,
        canary: stats.business.canary,
        relativeChange: t.relativeChange,
        pValue: t.pValue,
      };
    }
    const { events } = await this.store.withDeployment(
      name,
      this.collecting(async (q, locked) => {
        const current = locked.canary;
        // Someone changed the canary while we measured: this verdict is about a state that is gone.
        if (!current || current.id !== c.id || current.weight !== c.weight || current.stepStartedAt !== c.stepStartedAt)
          return;
        if (leaseHolder && !(await this.store.holdsLease(q, ANALYSIS_LEASE, leaseHolder))) return;
        const paused = locked.status === 'paused';
        const actions = paused ? [] : decision.actions;
        const reason = decision.reasons.join('; ');
        const analysis: Omit<AnalysisRow, 'id' | 'at'> = {
          canaryId: c.id,
          deployment: name,
          verdict: decision.verdict,
          reasons: decision.reasons,
          baselineStats: result.baseline && { ...result.baseline, business: result.business?.baseline ?? null },
          canaryStats: result.canary && {
            ...result.canary,
            business: result.business?.canary ?? null,
            businessChange: result.business?.relativeChange ?? null,
            businessPValue: result.business?.pValue ?? null,
          },
          weight: c.weight,
          rules: decision.rules,
          needs: decision.needs ?? null,
          action: actions.map((a) => a.type).join(',') || 'hold',
          actor,
        };
        // With the actions held (paused), the step is not advanced: keep the un-advanced memory.
        const kept = actions.length === decision.actions.length ? decision.progress : progressOf(c, paused);
        await this.store.recordAnalysis(q, analysis, stateOf(kept));
        // An analysis writes an event only when its verdict changes (or when it acts).
        const changed = decision.verdict !== c.lastVerdict;
        const failing = decision.verdict === 'critical' || decision.verdict === 'error';
        const evidence = {
          baseline: result.baseline,
          canary: result.canary,
          rules: decision.rules.filter((r) => r.status === 'fail' || r.status === 'warn'),
        };
        if (failing && (changed || actions.some((a) => a.type === 'rollback'))) {
          await this.event(
            q,
            name,
            'analysis_failed',
            actor,
            reason,
            { verdict: c.lastVerdict },
            { verdict: decision.verdict, autoRollback: c.policy.autoRollback, ...evidence },
          );
        }
        const inShadow = c.state.phase === 'shadow';
        for (const a of actions) {
          if (a.type === 'advance') {
            if (a.fromShadow)
              await this.event(
                q,
                name,
                'shadow_passed',
                actor,
                reason,
                { weight: 0 },
                { weight: a.weight, rules: decision.rules },
              );
            await this.store.setCanaryWeight(q, c.id, a.weight, now, stateOf(decision.progress));
            await this.event(q, name, 'step_advanced', actor, reason, { weight: c.weight }, { weight: a.weight });
          } else if (a.type === 'promote') {
            await this.promoteIn(q, locked, reason, actor, true);
          } else if (a.type === 'rollback') {
            if (inShadow) await this.event(q, name, 'shadow_failed', actor, reason, { weight: 0 }, evidence);
            await this.rollbackCanaryIn(q, locked, reason, actor, true, evidence);
          }
        }
        result.applied = true;
      }),
      { bump: decision.actions.length > 0 },
    );
    if (result.applied && decision.actions.length > 0) await this.publishRoutes();
    this.announce(events);
    timer?.();
    if (result.applied)
      this.deps.telemetry?.decisions.labels(name, decision.actions.map((a) => a.type).join(',') || 'hold').inc();
    if (decision.verdict === 'error') this.deps.telemetry?.analysisFailures.labels(name).inc();
    this.deps.logger.info(
      {
        deployment: name,
        canary: c.version,
        weight: c.weight,
        verdict: decision.verdict,
        actions: decision.actions.map((a) => a.type),
        applied: result.applied,
      },
      'analysis',
    );
    return result;
  }

  /**
   * Canaries the proxies tripped on their own: each is recorded as `proxy_tripped` with its
   * evidence and, when the canary is still the one running and autoRollback is on, rolled back
   * through the normal path (events and alerts as for any automatic rollback). A trip for a
   * canary that is no longer running is recorded and changes nothing.
   */
  async handleTrips(leaseHolder?: string): Promise<number> {
    if (!this.deps.trips) return 0;
    const trips = await this.deps.trips.takeTrips();
    for (const trip of trips) {
      this.deps.telemetry?.proxyTrips.labels(trip.deployment).inc();
      const reason = `a proxy took canary ${trip.version} off live traffic after ${trip.consecutiveFailures} consecutive failures (${[...new Set(trip.outcomes)].join(', ')})`;
      try {
        const { events, out: acted } = await this.store.withDeployment(
          trip.deployment,
          this.collecting(async (q, d) => {
            if (leaseHolder && !(await this.store.holdsLease(q, ANALYSIS_LEASE, leaseHolder))) return false;
            const running = d.canary?.version === trip.version;
            await this.event(
              q,
              d.name,
              'proxy_tripped',
              'proxy',
              reason,
              { canary: d.canary?.version ?? null },
              { ...trip, running },
            );
            if (!running || d.status === 'paused' || !d.canary!.policy.autoRollback) return false;
            await this.rollbackCanaryIn(q, d, reason, 'proxy', true, { trip });
            return true;
          }),
        );
        if (acted) await this.publishRoutes();
        this.announce(events);
      } catch (err) {
        this.deps.logger.warn({ err: (err as Error).message, trip }, 'could not record a proxy trip');
      }
    }
    return trips.length;
  }

  async analysis(name: string, limit = 50) {
    await this.getDeployment(name);
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
    await this.getDeployment(name);
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

  async events(name: string, limit: number) {
    await this.getDeployment(name);
    return this.store.events(name, limit);
  }

  async versions(name: string) {
    await this.getDeployment(name);
    return this.store.listVersions(name);
  }

  listDeployments() {
    return this.store.listDeployments();
  }

  get pool() {
    return this.store.pool;
  }
}

export type { Policy };

/** decide()'s input memory for a stored canary. */
function progressOf(c: CanaryRow, paused: boolean): CanaryProgress {
  return { weight: c.weight, stepStartedAt: c.stepStartedAt, paused, ...c.state };
}

/** The part of decide()'s memory that is stored with the canary. */
function stateOf(p: CanaryProgress): AnalysisState {
  return {
    strata: p.strata ?? [],
    limits: p.limits ?? null,
    lastStep: p.lastStep ?? null,
    p99BreachSince: p.p99BreachSince,
    businessBreachSince: p.businessBreachSince ?? null,
    ...(p.phase ? { phase: p.phase } : {}),
  };
}

/** A step's stats start at the whole second after it began: that second mixes two weights. */
export const stepReadFrom = (stepStartedAt: number) => (Math.floor(stepStartedAt / 1000) + 1) * 1000;

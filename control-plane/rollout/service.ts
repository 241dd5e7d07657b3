import type pg from 'pg';
import { CanaryError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { VersionStats } from '../../proxy/telemetry/stats.js';
import type { MetricsSource } from '../metrics/source.js';
import type { RoutePublisher } from '../state/route-publisher.js';
import type { ControlStore } from '../state/store.js';
import type { AnalysisRow, CanaryRow, DeploymentRow, EventRow, EventType } from '../state/types.js';
import { decide, windowStart, type Decision, type StatsInput } from './decide.js';
import { resolvePolicy, type Policy } from './policy.js';
import { outcomeStats } from '../metrics/business.js';
import { businessTest } from './business.js';

export const ANALYSIS_LEASE = 'analysis';

export interface ServiceDeps {
  store: ControlStore;
  publisher: RoutePublisher;
  /** The proxies' windowed stats (policy.metrics "proxy"). */
  metrics: MetricsSource;
  /** Prometheus, when configured (policy.metrics "prometheus"). */
  prometheus?: MetricsSource | null;
  logger: Logger;
  /** The base every policy starts from (DEFAULT_POLICY with the configured metrics source). */
  defaultPolicy?: Policy;
  /** Called with the events of each committed change (alerts); never awaited. */
  onEvents?: (events: EventRow[]) => void;
  /** Injectable clock (ms) for tests; Date.now by default. */
  now?: () => number;
}

export interface EvaluateResult {
  deployment: string;
  canaryVersion: string;
  verdict: Decision['verdict'];
  reasons: string[];
  actions: Decision['actions'];
  weight: number;
  baseline: VersionStats | null;
  canary: VersionStats | null;
  /** Business outcomes per variant with the test's result, when feedback arrives. */
  business: { baseline: unknown; canary: unknown; relativeChange: unknown; pValue: number } | null;
  /** false when the canary changed while it was measured, or leadership was lost: nothing applied. */
  applied: boolean;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function checkUrl(url: unknown, field: string): string {
  if (typeof url !== 'string') throw new CanaryError('BAD_REQUEST', `${field}: expected a URL string`);
  let u: URL;
  try { u = new URL(url); } catch { throw new CanaryError('BAD_REQUEST', `${field}: not a URL: ${JSON.stringify(url)}`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CanaryError('BAD_REQUEST', `${field}: only http and https model servers are supported`);
  return u.origin;
}

function checkName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) throw new CanaryError('BAD_REQUEST', `${field}: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`);
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
      this.deps.logger.warn({ err: (err as Error).message }, 'route table publish failed; the reconcile loop will retry');
    }
  }

  /**
   * A change to one deployment, optimistic: the revision seen first must still hold under
   * the lock, so of two racing requests the second gets 409 instead of acting on a state
   * it never saw (a rollback meant for a canary must not roll back the new baseline).
   */
  private async change<T>(name: string, fn: (q: pg.PoolClient, d: DeploymentRow) => Promise<T>): Promise<T> {
    const expectedRevision = await this.store.revision(name);
    const { out, events } = await this.store.withDeployment(name, this.collecting(fn), { expectedRevision });
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

  /** A replica became the analysis leader: a global event (deployment "*"). */
  async recordLeaderChange(holder: string): Promise<void> {
    const e = await this.store.insertEvent(this.store.pool, { deployment: '*', type: 'leader_changed', actor: holder, reason: `${holder} became the analysis leader`, after: { holder } });
    this.announce([e]);
  }

  private async event(q: pg.PoolClient, deployment: string, type: EventType, actor: string, reason: string | null, before: unknown, after: unknown) {
    const e = await this.store.insertEvent(q, { deployment, type, actor, reason, before, after });
    this.emitted.get(q)?.push(e);
    return e;
  }

  async getDeployment(name: string): Promise<DeploymentRow> {
    const d = await this.store.getDeployment(name);
    if (!d) throw new CanaryError('DEPLOYMENT_NOT_FOUND', `no deployment named ${JSON.stringify(name)}`);
    return d;
  }

  async createDeployment(body: { name: unknown; baseline: { version: unknown; url: unknown; metadata?: unknown }; policy?: unknown; retryCanaryOnBaseline?: boolean }, actor: string): Promise<DeploymentRow> {
    const name = checkName(body.name, 'name');
    const version = checkName(body.baseline?.version, 'baseline.version');
    const url = checkUrl(body.baseline?.url, 'baseline.url');
    resolvePolicy(body.policy); // validate now; stored as given and resolved when a canary starts
    const { events } = await this.store.transaction(this.collecting(async (q) => {
      await this.store.insertDeployment(q, name, version, body.policy ?? {}, body.retryCanaryOnBaseline ?? true);
      await this.store.insertVersion(q, name, version, url, body.baseline.metadata, 'serving');
      await this.event(q, name, 'deployment_created', actor, null, null, { baseline: { version, url } });
    }));
    await this.publishRoutes();
    this.announce(events);
    return this.getDeployment(name);
  }

  async registerVersion(name: string, body: { version: unknown; url: unknown; metadata?: unknown }, actor: string) {
    const version = checkName(body.version, 'version');
    const url = checkUrl(body.url, 'url');
    if (body.metadata !== undefined && (typeof body.metadata !== 'object' || body.metadata === null || Array.isArray(body.metadata))) {
      throw new CanaryError('BAD_REQUEST', 'metadata: expected an object (trainedAt, dataVersion, metrics, …)');
    }
    return this.change(name, async (q) => {
      const existing = await this.store.getVersion(name, version, q);
      if (existing) {
        if (existing.url !== url) throw new CanaryError('VERSION_EXISTS', `version ${version} is already registered at ${existing.url}`);
        return { version: existing, created: false };
      }
      await this.store.insertVersion(q, name, version, url, body.metadata, 'registered');
      await this.event(q, name, 'version_registered', actor, null, null, { version, url, metadata: body.metadata ?? {} });
      return { version: (await this.store.getVersion(name, version, q))!, created: true };
    });
  }

  async startCanary(name: string, body: { version: unknown; url?: unknown; weight?: unknown; policy?: unknown }, actor: string): Promise<DeploymentRow> {
    const version = checkName(body.version, 'version');
    await this.change(name, async (q, d) => {
      if (d.canary) throw new CanaryError('CANARY_RUNNING', `canary ${d.canary.version} is already running for ${name}; promote or roll it back first`);
      if (version === d.baselineVersion) throw new CanaryError('BAD_REQUEST', `${version} is already the baseline`);
      const policy = resolvePolicy(body.policy, resolvePolicy(d.defaultPolicy, this.deps.defaultPolicy));
      if (policy.metrics === 'prometheus' && !this.deps.prometheus) throw new CanaryError('BAD_REQUEST', 'policy.metrics: "prometheus" needs CANARY_PROMETHEUS_URL on the control plane');
      let v = await this.store.getVersion(name, version, q);
      const url = body.url === undefined ? v?.url : checkUrl(body.url, 'url');
      if (!v) {
        if (!url) throw new CanaryError('VERSION_NOT_FOUND', `version ${version} is not registered; register it or pass its url`);
        await this.store.insertVersion(q, name, version, url, {}, 'registered');
        await this.event(q, name, 'version_registered', actor, null, null, { version, url });
        v = (await this.store.getVersion(name, version, q))!;
      } else if (url && url !== v.url) {
        throw new CanaryError('VERSION_EXISTS', `version ${version} is registered at ${v.url}, not ${url}`);
      }
      const weight = body.weight === undefined ? policy.steps[0] : Number(body.weight);
      if (!(weight >= 0 && weight <= 100)) throw new CanaryError('BAD_REQUEST', 'weight: expected a number from 0 to 100');
      const c = await this.store.insertCanary(q, { deployment: name, version, url: v.url, baselineVersion: d.baselineVersion, policy, weight, at: this.now() });
      await this.store.setVersionState(q, name, version, 'canary');
      await this.store.setDeployment(q, name, { status: 'progressing' });
      await this.event(q, name, 'canary_started', actor, null, { baseline: d.baselineVersion }, { canary: version, url: v.url, weight, canaryId: c.id });
    });
    return this.getDeployment(name);
  }

  async setTraffic(name: string, weight: unknown, actor: string): Promise<DeploymentRow> {
    if (typeof weight !== 'number' || !(weight >= 0 && weight <= 100)) throw new CanaryError('BAD_REQUEST', 'weight: expected a number from 0 to 100');
    await this.change(name, async (q, d) => {
      if (!d.canary) throw new CanaryError('NO_CANARY', `no canary is running for ${name}`);
      await this.store.setCanaryWeight(q, d.canary.id, weight, this.now());
      await this.event(q, name, 'traffic_adjusted', actor, null, { weight: d.canary.weight }, { weight });
    });
    return this.getDeployment(name);
  }

  async setPaused(name: string, paused: boolean, actor: string): Promise<DeploymentRow> {
    await this.change(name, async (q, d) => {
      if (!d.canary) throw new CanaryError('NO_CANARY', `no canary is running for ${name}: nothing to ${paused ? 'pause' : 'resume'}`);
      if ((d.status === 'paused') === paused) return; // idempotent: no second event
      await this.store.setDeployment(q, name, { status: paused ? 'paused' : 'progressing' });
      await this.event(q, name, paused ? 'paused' : 'resumed', actor, null, { status: d.status }, { status: paused ? 'paused' : 'progressing' });
    });
    return this.getDeployment(name);
  }

  /** Canary becomes the baseline; the old baseline is retired but kept ready for rollback. */
  async promote(name: string, reason: string | null, actor: string): Promise<DeploymentRow> {
    await this.change(name, (q, d) => this.promoteIn(q, d, reason, actor, false));
    return this.getDeployment(name);
  }

  private async promoteIn(q: pg.PoolClient, d: DeploymentRow, reason: string | null, actor: string, auto: boolean): Promise<void> {
    const c = d.canary;
    if (!c) throw new CanaryError('NO_CANARY', `no canary is running for ${d.name}: nothing to promote`);
    if (auto) await this.event(q, d.name, 'auto_promote_triggered', actor, reason, { weight: c.weight }, { canary: c.version });
    await this.store.endCanary(q, c.id, 'promoted');
    await this.store.setVersionState(q, d.name, d.baselineVersion, 'retired');
    await this.store.setVersionState(q, d.name, c.version, 'serving');
    await this.store.setDeployment(q, d.name, { status: 'stable', baselineVersion: c.version });
    await this.event(q, d.name, 'promoted', actor, reason, { baseline: d.baselineVersion, canary: c.version, weight: c.weight }, { baseline: c.version });
  }

  /**
   * With a canary running: weight 0 and the canary removed at once, the baseline keeps
   * serving. Without one: the baseline returns to `toVersion`, or by default the newest
   * earlier version that served, is healthy, and was not itself rolled back.
   */
  async rollback(name: string, reason: string | null, toVersion: string | undefined, actor: string): Promise<DeploymentRow> {
    await this.change(name, async (q, d) => {
      if (d.canary && toVersion === undefined) return this.rollbackCanaryIn(q, d, reason, actor, false);
      if (d.canary) throw new CanaryError('CANARY_RUNNING', `a canary (${d.canary.version}) is running: roll it back first, then the baseline`);
      const versions = await this.store.listVersions(name, q);
      let target = toVersion === undefined
        ? versions.filter((v) => v.state === 'retired' && v.healthy !== false).sort((a, b) => (b.servedUntil ?? 0) - (a.servedUntil ?? 0))[0]
        : versions.find((v) => v.version === toVersion);
      if (toVersion !== undefined && !target) throw new CanaryError('VERSION_NOT_FOUND', `version ${toVersion} is not registered for ${name}`);
      if (!target) throw new CanaryError('NO_ROLLBACK_TARGET', `no earlier healthy version of ${name} to roll back to`);
      if (target.version === d.baselineVersion) throw new CanaryError('BAD_REQUEST', `${target.version} is already the baseline`);
      if (target.healthy === false) throw new CanaryError('NO_ROLLBACK_TARGET', `version ${target.version} failed its last health probe (${target.lastProbeError ?? 'unhealthy'})`);
      await this.store.setVersionState(q, name, d.baselineVersion, 'rolled_back');
      await this.store.setVersionState(q, name, target.version, 'serving');
      await this.store.setDeployment(q, name, { baselineVersion: target.version });
      await this.event(q, name, 'rolled_back', actor, reason, { baseline: d.baselineVersion }, { baseline: target.version });
    });
    return this.getDeployment(name);
  }

  private async rollbackCanaryIn(q: pg.PoolClient, d: DeploymentRow, reason: string | null, actor: string, auto: boolean): Promise<void> {
    const c = d.canary!;
    if (auto) await this.event(q, d.name, 'auto_rollback_triggered', actor, reason, { weight: c.weight }, { weight: 0 });
    await this.store.endCanary(q, c.id, 'rolled_back');
    await this.store.setVersionState(q, d.name, c.version, 'rolled_back');
    await this.store.setDeployment(q, d.name, { status: 'stable' });
    await this.event(q, d.name, 'rolled_back', actor, reason, { canary: c.version, weight: c.weight }, { canary: null, weight: 0, baseline: d.baselineVersion });
  }

  // ── analysis ─────────────────────────────────────────────────────────────────────

  private async measure(c: CanaryRow, baselineVersion: string, from: number, to: number): Promise<StatsInput> {
    const source = (c.policy.metrics ?? 'proxy') === 'prometheus' ? this.deps.prometheus : this.deps.metrics;
    if (!source) return { error: 'policy.metrics is "prometheus" but no Prometheus is configured (CANARY_PROMETHEUS_URL)' };
    try {
      const [baseline, canary] = await Promise.all([
        source.versionStats(c.deployment, baselineVersion, from, to),
        source.versionStats(c.deployment, c.version, from, to),
      ]);
      // Business outcomes count from the canary's start: unlike errors they do not depend on the weight.
      const [bOut, cOut] = await Promise.all([
        outcomeStats(this.store.pool, c.deployment, baselineVersion, c.startedAt, to),
        outcomeStats(this.store.pool, c.deployment, c.version, c.startedAt, to),
      ]);
      return { baseline, canary, business: bOut.n + cOut.n > 0 ? { baseline: bOut, canary: cOut } : null };
    } catch (err) {
      return { error: (err as Error).message };
    }
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
    const progress = { weight: c.weight, stepStartedAt: c.stepStartedAt, paused: d.status === 'paused', p99BreachSince: c.p99BreachSince, businessBreachSince: c.businessBreachSince };
    const stats = await this.measure(c, d.baselineVersion, windowStart(progress, c.policy, now), now);
    const decision = decide(progress, c.policy, stats, now);
    const result: EvaluateResult = {
      deployment: name, canaryVersion: c.version, verdict: decision.verdict, reasons: decision.reasons, actions: decision.actions,
      weight: c.weight, baseline: 'error' in stats ? null : stats.baseline, canary: 'error' in stats ? null : stats.canary, applied: false,
      business: null,
    };
    if (!('error' in stats) && stats.business) {
      const t = businessTest(stats.business.baseline, stats.business.canary, c.policy.businessDropMax, c.policy.confidence);
      result.business = { baseline: stats.business.baseline, canary: stats.business.canary, relativeChange: t.relativeChange, pValue: t.pValue };
    }
    const { events } = await this.store.withDeployment(name, this.collecting(async (q, locked) => {
      const current = locked.canary;
      // Someone changed the canary while we measured: this verdict is about a state that is gone.
      if (!current || current.id !== c.id || current.weight !== c.weight || current.stepStartedAt !== c.stepStartedAt) return;
      if (leaseHolder && !(await this.store.holdsLease(q, ANALYSIS_LEASE, leaseHolder))) return;
      const paused = locked.status === 'paused';
      const actions = paused ? [] : decision.actions;
      const reason = decision.reasons.join('; ');
      const analysis: Omit<AnalysisRow, 'id' | 'at'> = {
        canaryId: c.id, deployment: name, verdict: decision.verdict, reasons: decision.reasons,
        baselineStats: result.baseline && { ...result.baseline, business: result.business?.baseline ?? null },
        canaryStats: result.canary && { ...result.canary, business: result.business?.canary ?? null, businessChange: result.business?.relativeChange ?? null, businessPValue: result.business?.pValue ?? null },
        weight: c.weight,
        action: actions.map((a) => a.type).join(',') || 'hold', actor,
      };
      await this.store.recordAnalysis(q, analysis, decision.progress.p99BreachSince, decision.progress.businessBreachSince ?? null);
      // An analysis writes an event only when its verdict changes (or when it acts).
      const changed = decision.verdict !== c.lastVerdict;
      const failing = decision.verdict === 'critical' || decision.verdict === 'error';
      if (failing && (changed || actions.some((a) => a.type === 'rollback'))) {
        await this.event(q, name, 'analysis_failed', actor, reason, { verdict: c.lastVerdict }, { verdict: decision.verdict, autoRollback: c.policy.autoRollback, baseline: result.baseline, canary: result.canary });
      }
      for (const a of actions) {
        if (a.type === 'advance') {
          await this.store.setCanaryWeight(q, c.id, a.weight, now);
          await this.event(q, name, 'step_advanced', actor, reason, { weight: c.weight }, { weight: a.weight });
        } else if (a.type === 'promote') {
          await this.promoteIn(q, locked, reason, actor, true);
        } else if (a.type === 'rollback') {
          await this.rollbackCanaryIn(q, locked, reason, actor, true);
        }
      }
      result.applied = true;
    }), { bump: decision.actions.length > 0 });
    if (result.applied && decision.actions.length > 0) await this.publishRoutes();
    this.announce(events);
    this.deps.logger.info({ deployment: name, canary: c.version, weight: c.weight, verdict: decision.verdict, actions: decision.actions.map((a) => a.type), applied: result.applied }, 'analysis');
    return result;
  }

  async analysis(name: string, limit = 50) {
    await this.getDeployment(name);
    const canary = await this.store.lastCanary(name);
    const history = canary ? await this.store.analyses(name, limit, canary.id) : [];
    return { deployment: name, canary, latest: history[0] ?? null, history };
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

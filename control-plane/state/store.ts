import type pg from 'pg';
import { CanaryError } from '../../common/errors.js';
import type { Policy } from '../model/policy.js';
import type { DeploymentSettings } from '../model/settings.js';
import { DEPLOYMENT_SELECT, toAnalysis, toCanary, toDeployment, toEvent, toVersion, versionNamed } from './rows.js';
import type {
  AnalysisRow,
  AnalysisState,
  CanaryRow,
  DeploymentRow,
  EventRow,
  EventType,
  VersionRow,
  VersionState,
} from './types.js';

type Q = pg.PoolClient | pg.Pool;

/**
 * All SQL of the control plane. Reads take the pool; writes take the client of the
 * transaction the service opened, so a change and its event always commit together.
 */
export class ControlStore {
  constructor(readonly pool: pg.Pool) {}

  /** The deployment's revision, read without a lock (the start of an optimistic change). */
  async revision(name: string): Promise<number | null> {
    const r = await this.pool.query('SELECT revision FROM deployments WHERE name = $1', [name]);
    return r.rows[0] ? Number(r.rows[0].revision) : null;
  }

  /**
   * Runs `fn` in a transaction holding the deployment's row lock (SELECT … FOR UPDATE), so
   * changes to one deployment are serialised. With `expectedRevision`, a change that
   * committed while this one waited makes it fail with CONFLICT (409) rather than act on
   * a state its caller never saw; with `bump`, this change moves the revision on.
   * Throws DEPLOYMENT_NOT_FOUND when the deployment does not exist.
   */
  async withDeployment<T>(
    name: string,
    fn: (q: pg.PoolClient, d: DeploymentRow) => Promise<T>,
    opts: { expectedRevision?: number | null; bump?: boolean; ifMatch?: boolean } = {},
  ): Promise<T> {
    return this.transaction(async (q) => {
      const locked = await q.query('SELECT revision FROM deployments WHERE name = $1 FOR UPDATE', [name]);
      if (locked.rowCount === 0)
        throw new CanaryError('DEPLOYMENT_NOT_FOUND', `no deployment named ${JSON.stringify(name)}`);
      const revision = Number(locked.rows[0].revision);
      if (opts.expectedRevision != null && revision !== opts.expectedRevision) {
        if (opts.ifMatch)
          throw new CanaryError(
            'PRECONDITION_FAILED',
            `deployment ${name} is at revision ${revision}, not ${opts.expectedRevision} (If-Match): it changed since it was read; reload and retry`,
          );
        throw new CanaryError(
          'CONFLICT',
          `deployment ${name} was changed by another request while this one waited; reload and retry`,
        );
      }
      const d = await this.getDeployment(name, q);
      const out = await fn(q, d!);
      if (opts.bump !== false)
        await q.query('UPDATE deployments SET revision = revision + 1, updated_at = now() WHERE name = $1', [name]);
      return out;
    });
  }

  async transaction<T>(fn: (q: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  // ── reads ────────────────────────────────────────────────────────────────────────

  async getDeployment(name: string, q: Q = this.pool): Promise<DeploymentRow | null> {
    const r = await q.query(`${DEPLOYMENT_SELECT} WHERE d.name = $1`, [name]);
    return r.rows[0] ? toDeployment(r.rows[0]) : null;
  }

  async listDeployments(): Promise<DeploymentRow[]> {
    return (await this.pool.query(`${DEPLOYMENT_SELECT} ORDER BY d.name`)).rows.map(toDeployment);
  }

  async listVersions(deployment: string, q: Q = this.pool): Promise<VersionRow[]> {
    const r = await q.query('SELECT * FROM versions WHERE deployment = $1 ORDER BY registered_at DESC, version DESC', [
      deployment,
    ]);
    return r.rows.map(toVersion);
  }

  async getVersion(deployment: string, version: string, q: Q = this.pool): Promise<VersionRow | null> {
    const r = await q.query('SELECT * FROM versions WHERE deployment = $1 AND version = $2', [deployment, version]);
    return r.rows[0] ? toVersion(r.rows[0]) : null;
  }

  /** The newest events of a deployment, of one version's when `version` is given. */
  async events(deployment: string, limit: number, version?: string): Promise<EventRow[]> {
    return (await this.newest('events', deployment, limit, version === undefined ? null : ['version', version])).map(
      toEvent,
    );
  }

  async analyses(deployment: string, limit: number, canaryId?: number): Promise<AnalysisRow[]> {
    return (
      await this.newest('analyses', deployment, limit, canaryId === undefined ? null : ['canary_id', canaryId])
    ).map(toAnalysis);
  }

  /** A deployment's newest rows of `table`, only those with `column = value` when a filter is given. */
  private async newest(
    table: 'events' | 'analyses',
    deployment: string,
    limit: number,
    filter: ['version' | 'canary_id', unknown] | null,
  ) {
    const where = filter ? ` AND ${filter[0]} = $3` : '';
    const params = filter ? [deployment, limit, filter[1]] : [deployment, limit];
    return (
      await this.pool.query(`SELECT * FROM ${table} WHERE deployment = $1${where} ORDER BY id DESC LIMIT $2`, params)
    ).rows;
  }

  /** The most recent canary of one version (to know how it ended and what it was last judged). */
  async lastCanaryOf(deployment: string, version: string, q: Q = this.pool): Promise<CanaryRow | null> {
    const r = await q.query('SELECT * FROM canaries WHERE deployment = $1 AND version = $2 ORDER BY id DESC LIMIT 1', [
      deployment,
      version,
    ]);
    return r.rows[0] ? toCanary(r.rows[0]) : null;
  }

  async lastCanary(deployment: string): Promise<CanaryRow | null> {
    const r = await this.pool.query('SELECT * FROM canaries WHERE deployment = $1 ORDER BY id DESC LIMIT 1', [
      deployment,
    ]);
    return r.rows[0] ? toCanary(r.rows[0]) : null;
  }

  async runningCanaries(): Promise<CanaryRow[]> {
    return (await this.pool.query("SELECT * FROM canaries WHERE outcome = 'running' ORDER BY id")).rows.map(toCanary);
  }

  /** Versions whose upstream the prober checks: serving, canary, and the newest earlier ones (retired or rolled back: both can be rolled back to). */
  async versionsToProbe(retiredPerDeployment: number): Promise<VersionRow[]> {
    const r = await this.pool.query(
      `
      SELECT * FROM (
        SELECT v.*, row_number() OVER (PARTITION BY deployment ORDER BY served_until DESC NULLS LAST) AS rn
          FROM versions v WHERE state IN ('retired', 'rolled_back')) x WHERE rn <= $1
      UNION ALL SELECT v.*, 0 FROM versions v WHERE state IN ('serving', 'canary')`,
      [retiredPerDeployment],
    );
    return r.rows.map(toVersion);
  }

  /** The holder named by the newest `leader_changed` event, if any. */
  async lastLeader(): Promise<string | null> {
    const r = await this.pool.query(
      `SELECT actor FROM events WHERE deployment = '*' AND type = 'leader_changed' ORDER BY id DESC LIMIT 1`,
    );
    return r.rows[0]?.actor ?? null;
  }

  /** What the route table is built from: every deployment, and the newest event id (its version). */
  async routeRows(): Promise<{ version: number; deployments: DeploymentRow[] }> {
    const deployments = await this.listDeployments();
    const version = Number((await this.pool.query('SELECT coalesce(max(id), 0) AS v FROM events')).rows[0].v);
    return { version, deployments };
  }

  // ── writes (inside a transaction) ────────────────────────────────────────────────

  async insertEvent(
    q: Q,
    e: {
      deployment: string;
      type: EventType;
      actor: string;
      reason?: string | null;
      before?: unknown;
      after?: unknown;
    },
  ): Promise<EventRow> {
    // The version it concerns: the one it names, else the canary running when it happened
    // (step_advanced, analysis_failed, paused …; the same transaction sees it before it ends).
    const r = await q.query(
      `INSERT INTO events (deployment, type, actor, reason, before, after, version)
       VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7,
         (SELECT version FROM canaries WHERE deployment = $1 AND outcome = 'running' ORDER BY id DESC LIMIT 1)))
       RETURNING *`,
      [
        e.deployment,
        e.type,
        e.actor,
        e.reason ?? null,
        JSON.stringify(e.before ?? null),
        JSON.stringify(e.after ?? null),
        versionNamed(e.before, e.after),
      ],
    );
    return toEvent(r.rows[0]);
  }

  async insertDeployment(
    q: Q,
    name: string,
    baselineVersion: string,
    defaultPolicy: unknown,
    retry: boolean,
    settings: DeploymentSettings = {},
  ): Promise<void> {
    const r = await q.query(
      'INSERT INTO deployments (name, baseline_version, default_policy, retry_canary_on_baseline, settings) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
      [name, baselineVersion, JSON.stringify(defaultPolicy ?? {}), retry, JSON.stringify(settings)],
    );
    if (r.rowCount === 0)
      throw new CanaryError('DEPLOYMENT_EXISTS', `deployment ${JSON.stringify(name)} already exists`);
  }

  async insertVersion(
    q: Q,
    deployment: string,
    version: string,
    url: string,
    metadata: unknown,
    state: VersionState,
  ): Promise<void> {
    await q.query(
      `INSERT INTO versions (deployment, version, url, metadata, state, served_from) VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'serving' THEN now() END)`,
      [deployment, version, url, JSON.stringify(metadata ?? {}), state],
    );
  }

  async setVersionState(q: Q, deployment: string, version: string, state: VersionState): Promise<void> {
    await q.query(
      `UPDATE versions SET state = $3,
        served_from = CASE WHEN $3 = 'serving' THEN now() ELSE served_from END,
        served_until = CASE WHEN state = 'serving' AND $3 <> 'serving' THEN now() ELSE served_until END
      WHERE deployment = $1 AND version = $2`,
      [deployment, version, state],
    );
  }

  /** Removes a deployment and its versions, canaries and analyses; its events stay (the audit trail). */
  async deleteDeployment(q: Q, name: string): Promise<void> {
    await q.query('DELETE FROM deployments WHERE name = $1', [name]);
  }

  async deleteVersion(q: Q, deployment: string, version: string): Promise<void> {
    await q.query('DELETE FROM canaries WHERE deployment = $1 AND version = $2', [deployment, version]);
    await q.query('DELETE FROM versions WHERE deployment = $1 AND version = $2', [deployment, version]);
  }

  async setSettings(q: Q, name: string, settings: DeploymentSettings, retryCanaryOnBaseline: boolean): Promise<void> {
    await q.query(
      'UPDATE deployments SET settings = $2, retry_canary_on_baseline = $3, updated_at = now() WHERE name = $1',
      [name, JSON.stringify(settings), retryCanaryOnBaseline],
    );
  }

  async setDeployment(q: Q, name: string, fields: { status?: string; baselineVersion?: string }): Promise<void> {
    await q.query(
      'UPDATE deployments SET status = coalesce($2, status), baseline_version = coalesce($3, baseline_version), updated_at = now() WHERE name = $1',
      [name, fields.status ?? null, fields.baselineVersion ?? null],
    );
  }

  async insertCanary(
    q: Q,
    c: {
      deployment: string;
      version: string;
      url: string;
      baselineVersion: string;
      policy: Policy;
      weight: number;
      at: number;
      state?: Partial<AnalysisState>;
    },
  ): Promise<CanaryRow> {
    const r = await q.query(
      `INSERT INTO canaries (deployment, version, url, baseline_version, policy, weight, step_started_at, started_at, analysis_state)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING *`,
      [
        c.deployment,
        c.version,
        c.url,
        c.baselineVersion,
        JSON.stringify(c.policy),
        c.weight,
        new Date(c.at),
        JSON.stringify(c.state ?? {}),
      ],
    );
    return toCanary(r.rows[0]);
  }

  /** Changes the weight and starts a new step at `at`, with decide()'s memory carried as `state`. */
  async setCanaryWeight(q: Q, id: number, weight: number, at: number, state: AnalysisState): Promise<void> {
    await q.query(`UPDATE canaries SET weight = $2, step_started_at = $3, analysis_state = $4 WHERE id = $1`, [
      id,
      weight,
      new Date(at),
      JSON.stringify(state),
    ]);
  }

  async endCanary(q: Q, id: number, outcome: 'promoted' | 'rolled_back'): Promise<void> {
    await q.query('UPDATE canaries SET outcome = $2, ended_at = now() WHERE id = $1', [id, outcome]);
  }

  /**
   * An analysis and decide()'s memory after it. `at` is the analysis clock's time (the one
   * step_started_at is on): the row's time and last_analysis_at, so the schedule never
   * compares two clocks and analyses are exactly an interval apart however slow a write is.
   */
  async recordAnalysis(q: Q, a: Omit<AnalysisRow, 'id' | 'at'>, state: AnalysisState, at: number): Promise<void> {
    await q.query(
      `INSERT INTO analyses (canary_id, deployment, verdict, reasons, baseline_stats, canary_stats, weight, action, actor, evidence, at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        a.canaryId,
        a.deployment,
        a.verdict,
        JSON.stringify(a.reasons),
        JSON.stringify(a.baselineStats),
        JSON.stringify(a.canaryStats),
        a.weight,
        a.action,
        a.actor,
        JSON.stringify({ rules: a.rules, needs: a.needs }),
        new Date(at),
      ],
    );
    await q.query(`UPDATE canaries SET last_verdict = $2, last_analysis_at = $4, analysis_state = $3 WHERE id = $1`, [
      a.canaryId,
      a.verdict,
      JSON.stringify(state),
      new Date(at),
    ]);
  }

  async recordProbe(deployment: string, version: string, healthy: boolean, error: string | null): Promise<void> {
    await this.pool.query(
      'UPDATE versions SET healthy = $3, last_probe_at = now(), last_probe_error = $4 WHERE deployment = $1 AND version = $2',
      [deployment, version, healthy, error],
    );
  }

  // ── leader lease ─────────────────────────────────────────────────────────────────

  /** Takes or renews the named lease; true when `holder` has it for the next `ttlMs`. */
  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const r = await this.pool.query(
      `
      INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
      ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
        acquired_at = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.acquired_at ELSE now() END
      WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
      RETURNING holder`,
      [name, holder, ttlMs],
    );
    return r.rowCount === 1;
  }

  /** Inside a transaction: does `holder` still hold the lease? (fencing for leader-only writes) */
  async holdsLease(q: Q, name: string, holder: string): Promise<boolean> {
    const r = await q.query('SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND expires_at > now()', [
      name,
      holder,
    ]);
    return r.rowCount === 1;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.pool.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
  }
}

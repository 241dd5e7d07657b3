import { createHmac } from 'node:crypto';
import type pg from 'pg';
import { Agent, request } from 'undici';
import { type AddressPolicy, AddressPolicyError, policedConnector } from '../../common/address-policy.js';
import { CanaryError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { ApprovalLinks } from '../approvals/links.js';
import type { AwaitingApproval } from '../model/progress.js';
import { EVENT_TYPES, type EventRow } from '../state/types.js';

/** Events that alert when a sink does not choose its own: the system acting on its own. */
export const DEFAULT_ALERT_EVENTS = [
  'auto_rollback_triggered',
  'auto_promote_triggered',
  'analysis_failed',
  'proxy_tripped',
  'leader_changed',
  'sample_ratio_mismatch',
  // A person is asked to act (policy.approvals).
  'approval_requested',
] as const;

/** One attempt to deliver an event's alert to a sink, as the API shows it. */
export interface AlertDelivery {
  sinkId: number;
  attempt: number;
  status: string;
  httpStatus: number | null;
  latencyMs: number;
  error: string | null;
  at: string;
}

export interface AlertSink {
  id: number;
  deployment: string | null;
  kind: 'webhook' | 'slack';
  url: string;
  secret: string | null;
  events: string[];
}

export interface AlertPolicy {
  /** Attempts per delivery (the first included). */
  attempts: number;
  /** Backoff before attempt n+1 is baseBackoffMs · 2^(n-1). */
  baseBackoffMs: number;
  timeoutMs: number;
  /** Where dashboard links in alerts point (set once the API listens). */
  dashboardUrl: string;
}

export const DEFAULT_ALERT_POLICY: Omit<AlertPolicy, 'dashboardUrl'> = {
  attempts: 4,
  baseBackoffMs: 500,
  timeoutMs: 5000,
};

/** The generic webhook body. */
export interface AlertBody {
  deployment: string;
  event: string;
  eventId: number;
  actor: string;
  reason: string | null;
  at: string;
  versions: { baseline: string | null; canary: string | null };
  verdict: string | null;
  stats: { baseline: unknown; canary: unknown } | null;
  dashboard: string;
  /** approval_requested: the page that approves what waits (a signed link, single-use, expiring). */
  approve?: string;
  /** Set on a test alert (POST /v1/alerts/sinks/{id}/test): nothing happened to any deployment. */
  test?: true;
}

export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function slackBody(a: AlertBody) {
  const what = a.event.replace(/_/g, ' ');
  return {
    text: `canary-mesh: ${what} for *${a.deployment}* (baseline ${a.versions.baseline ?? '-'}, canary ${a.versions.canary ?? '-'})${a.reason ? `: ${a.reason}` : ''} <${a.dashboard}|dashboard>${a.approve ? ` <${a.approve}|approve>` : ''}`,
  };
}

/**
 * A sink URL as it may be shown: scheme and host, the path masked. A Slack incoming-webhook
 * URL is itself a credential, so it is never returned whole nor logged.
 */
export function maskUrl(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '/' : '/…'}`;
  } catch {
    return '…';
  }
}

const sinkView = (s: AlertSink) => ({
  id: s.id,
  deployment: s.deployment,
  kind: s.kind,
  url: maskUrl(s.url),
  hasSecret: s.secret !== null,
  events: s.events,
});
export type SinkView = ReturnType<typeof sinkView>;

/**
 * Alert delivery, off the decision path: notify() only queues; each sink delivers on its
 * own chain, retrying 5xx, timeouts and connection failures with exponential backoff, so a
 * slow or failing sink never delays a rollback nor another sink. Every attempt is recorded.
 * Secrets sign bodies and are never returned or logged.
 */
export class AlertDispatcher {
  private readonly chains = new Map<number, Promise<void>>();
  private pendingCount = 0;

  /** Told each delivery attempt's outcome (the control plane's metrics). */
  onDelivery?: (outcome: 'delivered' | 'retrying' | 'failed') => void;
  /** Deliveries connect through the address policy: a sink is never the stack itself nor a metadata service. */
  private readonly dispatcher: Agent | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly logger: Logger,
    private readonly policy: AlertPolicy,
    private readonly addresses?: AddressPolicy,
    private readonly links?: ApprovalLinks,
  ) {
    this.dispatcher = addresses ? new Agent({ connect: policedConnector(addresses, policy.timeoutMs) }) : undefined;
  }

  set dashboardUrl(url: string) {
    this.policy.dashboardUrl = url;
  }

  async addSink(input: {
    deployment?: string | null;
    kind?: string;
    url?: unknown;
    secret?: unknown;
    events?: unknown;
  }): Promise<SinkView> {
    const kind = input.kind ?? 'webhook';
    if (kind !== 'webhook' && kind !== 'slack')
      throw new CanaryError('BAD_REQUEST', 'kind: expected "webhook" or "slack"');
    let url: URL;
    try {
      url = new URL(String(input.url));
    } catch {
      throw new CanaryError('BAD_REQUEST', `url: not a URL: ${JSON.stringify(input.url)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new CanaryError('BAD_REQUEST', 'url: only http and https');
    try {
      await this.addresses?.checkUrl(url.toString());
    } catch (err) {
      if (err instanceof AddressPolicyError) throw new CanaryError('UPSTREAM_NOT_ALLOWED', `url: ${err.message}`);
      throw err;
    }
    const events = input.events ?? [...DEFAULT_ALERT_EVENTS];
    if (!Array.isArray(events) || events.some((e) => typeof e !== 'string'))
      throw new CanaryError('BAD_REQUEST', 'events: expected a list of event types');
    const unknown = events.filter((e) => !(EVENT_TYPES as readonly string[]).includes(e));
    if (unknown.length)
      throw new CanaryError(
        'BAD_REQUEST',
        `events: unknown event type${unknown.length > 1 ? 's' : ''} ${unknown.map((e) => JSON.stringify(e)).join(', ')} (known: ${EVENT_TYPES.join(', ')})`,
      );
    if (input.secret !== undefined && (typeof input.secret !== 'string' || input.secret.length < 8))
      throw new CanaryError('BAD_REQUEST', 'secret: at least 8 characters');
    if (input.deployment) {
      const d = await this.pool.query('SELECT 1 FROM deployments WHERE name = $1', [input.deployment]);
      if (d.rowCount === 0)
        throw new CanaryError('DEPLOYMENT_NOT_FOUND', `no deployment named ${JSON.stringify(input.deployment)}`);
    }
    const r = await this.pool.query(
      'INSERT INTO alert_sinks (deployment, kind, url, secret, events) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [input.deployment ?? null, kind, url.toString(), input.secret ?? null, events],
    );
    return sinkView(toSink(r.rows[0]));
  }

  async deleteSink(id: number): Promise<void> {
    const r = await this.pool.query('DELETE FROM alert_sinks WHERE id = $1', [id]);
    if (r.rowCount === 0) throw new CanaryError('SINK_NOT_FOUND', `no alert sink with id ${id}`);
  }

  /**
   * Delivers one clearly marked test alert to a sink, now, once (no retries), and reports the
   * attempt: whether it was delivered, the HTTP status, the time it took, the error.
   */
  async testSink(id: number): Promise<{
    sink: SinkView;
    delivered: boolean;
    httpStatus: number | null;
    latencyMs: number;
    error: string | null;
  }> {
    const row = (await this.pool.query('SELECT * FROM alert_sinks WHERE id = $1', [id])).rows[0];
    if (!row) throw new CanaryError('SINK_NOT_FOUND', `no alert sink with id ${id}`);
    const sink = toSink(row);
    const alert: AlertBody = {
      deployment: sink.deployment ?? '*',
      event: 'test',
      eventId: 0,
      actor: 'api',
      reason: 'canary-mesh test alert: this sink is reachable (nothing happened to any deployment)',
      at: new Date().toISOString(),
      versions: { baseline: null, canary: null },
      verdict: null,
      stats: null,
      dashboard: this.policy.dashboardUrl,
      test: true,
    };
    const r = await this.send(sink, alert);
    return {
      sink: sinkView(sink),
      delivered: r.error === null,
      httpStatus: r.httpStatus,
      latencyMs: Math.round(r.latencyMs),
      error: r.error,
    };
  }

  /** One POST of an alert to a sink, signed when the sink has a secret. */
  private async send(
    sink: AlertSink,
    alert: AlertBody,
  ): Promise<{ httpStatus: number | null; error: string | null; latencyMs: number }> {
    const body = JSON.stringify(sink.kind === 'slack' ? slackBody(alert) : alert);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-canary-event': alert.event,
      'x-canary-event-id': String(alert.eventId),
    };
    if (sink.secret) headers['x-canary-signature'] = signature(sink.secret, body);
    const t0 = performance.now();
    let httpStatus: number | null = null;
    let error: string | null = null;
    try {
      const res = await request(sink.url, {
        method: 'POST',
        headers,
        body,
        headersTimeout: this.policy.timeoutMs,
        bodyTimeout: this.policy.timeoutMs,
        dispatcher: this.dispatcher,
      });
      await res.body.dump();
      httpStatus = res.statusCode;
      if (httpStatus >= 300) error = `HTTP ${httpStatus}`;
    } catch (err) {
      error = (err as Error).message;
    }
    return { httpStatus, error, latencyMs: performance.now() - t0 };
  }

  async listSinks(): Promise<SinkView[]> {
    return (await this.pool.query('SELECT * FROM alert_sinks ORDER BY id')).rows.map((r) => sinkView(toSink(r)));
  }

  async deliveries(eventIds: number[]): Promise<Map<number, AlertDelivery[]>> {
    const out = new Map<number, AlertDelivery[]>();
    if (eventIds.length === 0) return out;
    const r = await this.pool.query('SELECT * FROM alert_deliveries WHERE event_id = ANY($1::bigint[]) ORDER BY id', [
      eventIds,
    ]);
    for (const row of r.rows) {
      const list = out.get(Number(row.event_id)) ?? [];
      list.push({
        sinkId: Number(row.sink_id),
        attempt: row.attempt,
        status: row.status,
        httpStatus: row.http_status,
        latencyMs: row.latency_ms,
        error: row.error,
        at: row.at.toISOString(),
      });
      out.set(Number(row.event_id), list);
    }
    return out;
  }

  /** Queues alerts for committed events; returns at once. */
  notify(events: EventRow[]): void {
    for (const e of events) {
      this.pendingCount++;
      void this.fanOut(e)
        .catch((err) => this.logger.error({ err: (err as Error).message, event: e.id }, 'alert fan-out failed'))
        .finally(() => {
          this.pendingCount--;
        });
    }
  }

  /** Resolves once every queued delivery has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pendingCount > 0 || this.chains.size > 0) {
      await Promise.all([...this.chains.values()]);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async fanOut(e: EventRow): Promise<void> {
    // analysis_failed alerts only when nothing acted: with autoRollback on, the rollback alerts instead.
    if (e.type === 'analysis_failed' && (e.after as { autoRollback?: boolean } | null)?.autoRollback !== false) return;
    const sinks = (
      await this.pool.query(
        'SELECT * FROM alert_sinks WHERE (deployment IS NULL OR deployment = $1) AND $2 = ANY(events)',
        [e.deployment, e.type],
      )
    ).rows.map(toSink);
    if (sinks.length === 0) return;
    const body = await this.body(e);
    for (const sink of sinks) {
      const prev = this.chains.get(sink.id) ?? Promise.resolve();
      const next = prev.then(() => this.deliver(sink, e, body));
      this.chains.set(sink.id, next);
      void next.finally(() => {
        if (this.chains.get(sink.id) === next) this.chains.delete(sink.id);
      });
    }
  }

  private async body(e: EventRow): Promise<AlertBody> {
    const ctx = await this.pool.query(
      `SELECT c.version AS canary, c.baseline_version AS baseline, a.verdict, a.baseline_stats, a.canary_stats
        FROM canaries c LEFT JOIN LATERAL (SELECT * FROM analyses WHERE canary_id = c.id ORDER BY id DESC LIMIT 1) a ON true
       WHERE c.deployment = $1 AND c.started_at <= $2 ORDER BY c.id DESC LIMIT 1`,
      [e.deployment, new Date(e.at)],
    );
    const c = ctx.rows[0];
    return {
      deployment: e.deployment,
      event: e.type,
      eventId: e.id,
      actor: e.actor,
      reason: e.reason,
      at: new Date(e.at).toISOString(),
      versions: { baseline: c?.baseline ?? null, canary: c?.canary ?? null },
      verdict: c?.verdict ?? null,
      stats: c?.verdict ? { baseline: c.baseline_stats, canary: c.canary_stats } : null,
      dashboard: `${this.policy.dashboardUrl.replace(/\/$/, '')}/#/d/${encodeURIComponent(e.deployment)}`,
      ...(await this.approveLink(e)),
    };
  }

  /** An approval_requested event's link to the page that approves it. */
  private async approveLink(e: EventRow): Promise<{ approve?: string }> {
    const after = e.after as (AwaitingApproval & { canaryId?: number }) | null;
    if (e.type !== 'approval_requested' || !this.links || !after?.canaryId) return {};
    const token = await this.links.create(e.deployment, after.canaryId, after);
    return { approve: `${this.policy.dashboardUrl.replace(/\/$/, '')}/approve/${token}` };
  }

  private async deliver(sink: AlertSink, e: EventRow, alert: AlertBody): Promise<void> {
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      const { httpStatus, error, latencyMs } = await this.send(sink, alert);
      const retryable = error !== null && (httpStatus === null || httpStatus >= 500);
      const last = attempt === this.policy.attempts || !retryable;
      const status = error === null ? 'delivered' : last ? 'failed' : 'retrying';
      this.onDelivery?.(status);
      await this.pool
        .query(
          'INSERT INTO alert_deliveries (event_id, sink_id, attempt, status, http_status, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7)',
          [e.id, sink.id, attempt, status, httpStatus, latencyMs, error],
        )
        .catch((err) => this.logger.warn({ err: (err as Error).message }, 'could not record alert delivery'));
      if (status === 'delivered') return;
      // The sink by its id and masked address: its URL may be a credential.
      this.logger.warn(
        { sink: sink.id, url: maskUrl(sink.url), event: e.type, attempt, error },
        status === 'failed' ? 'alert delivery failed; giving up' : 'alert delivery failed; retrying',
      );
      if (last) return;
      await new Promise((r) => setTimeout(r, this.policy.baseBackoffMs * 2 ** (attempt - 1)));
    }
  }
}

function toSink(r: pg.QueryResultRow): AlertSink {
  return { id: Number(r.id), deployment: r.deployment, kind: r.kind, url: r.url, secret: r.secret, events: r.events };
}

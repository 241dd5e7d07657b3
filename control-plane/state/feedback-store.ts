import type pg from 'pg';
import { CanaryError } from '../../common/errors.js';
import type { OutcomeStats } from '../model/outcomes.js';

export const MAX_FEEDBACK_BATCH = 1000;

export interface FeedbackItem {
  requestId: string;
  outcome: number;
}

/** Pending outcomes not joined after this long are marked expired (and reported). */
export const PENDING_FEEDBACK_EXPIRY_MS = 10 * 60_000;

export interface FeedbackResult {
  /** Outcomes joined to their prediction now. */
  accepted: number;
  /**
   * Request ids the prediction log does not know yet (it is written about once a second): kept
   * and joined when it catches up, or reported as expired after PENDING_FEEDBACK_EXPIRY_MS.
   */
  pending: string[];
  /** Request ids that already had an outcome, or came twice in this batch: the first one stands. */
  duplicates: string[];
  /** Accepted, but for a canary that had already ended: stored, no decision changes. */
  late: number;
}

/** Validates a feedback body: one `{requestId, outcome}` or `{items: [...]}` of up to 1,000. */
export function parseFeedback(body: unknown): FeedbackItem[] {
  const b = body as { items?: unknown; requestId?: unknown; outcome?: unknown } | null;
  const items = Array.isArray(b?.items) ? b!.items : b && 'requestId' in b ? [b] : null;
  if (!items)
    throw new CanaryError('BAD_REQUEST', 'expected {requestId, outcome} or {items: [{requestId, outcome}, ...]}');
  if (items.length === 0 || items.length > MAX_FEEDBACK_BATCH)
    throw new CanaryError('BAD_REQUEST', `items: 1 to ${MAX_FEEDBACK_BATCH} outcomes per request, got ${items.length}`);
  return items.map((it, i) => {
    const { requestId, outcome } = (it ?? {}) as { requestId?: unknown; outcome?: unknown };
    if (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > 200)
      throw new CanaryError('BAD_REQUEST', `items[${i}].requestId: expected the x-request-id of a prediction`);
    if (typeof outcome !== 'number' || !Number.isFinite(outcome))
      throw new CanaryError(
        'BAD_REQUEST',
        `items[${i}].outcome: expected a number (1/0 for a conversion or a correct label, or a value)`,
      );
    return { requestId, outcome };
  });
}

/**
 * Business outcomes (POST /v1/feedback) in PostgreSQL: joined with the prediction log as they
 * arrive, kept pending until the log catches up, and summed per version for the business rule.
 */
export class FeedbackStore {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Stores outcomes joined with the prediction log, in one statement per batch; outcomes for
   * predictions not logged yet are kept as pending (never dropped).
   */
  async record(items: FeedbackItem[]): Promise<FeedbackResult> {
    const seen = new Set<string>();
    const duplicates: string[] = [];
    const unique: FeedbackItem[] = [];
    for (const it of items) {
      if (seen.has(it.requestId)) duplicates.push(it.requestId);
      else {
        seen.add(it.requestId);
        unique.push(it);
      }
    }
    const ids = unique.map((i) => i.requestId);
    const r = await this.pool.query(
      `
      WITH input AS (SELECT * FROM unnest($1::text[], $2::float8[]) AS t(request_id, outcome)),
      known AS (
        SELECT DISTINCT ON (p.request_id) p.request_id, p.deployment, p.version, p.role, p.at, i.outcome
          FROM input i JOIN predictions p ON p.request_id = i.request_id ORDER BY p.request_id, p.at DESC),
      inserted AS (
        ${insertFeedbackFrom('known')}
        ON CONFLICT (request_id) DO NOTHING
        RETURNING request_id, late)
      SELECT (SELECT array_agg(request_id) FROM known) AS known, (SELECT array_agg(request_id) FROM inserted) AS inserted,
             (SELECT count(*) FROM inserted WHERE late) AS late`,
      [ids, unique.map((i) => i.outcome)],
    );
    const known = new Set<string>(r.rows[0].known ?? []);
    const inserted = new Set<string>(r.rows[0].inserted ?? []);
    for (const id of ids) if (known.has(id) && !inserted.has(id)) duplicates.push(id);
    const waiting = unique.filter((i) => !known.has(i.requestId));
    const pending: string[] = [];
    if (waiting.length) {
      const p = await this.pool.query(
        `INSERT INTO pending_feedback (request_id, outcome) SELECT * FROM unnest($1::text[], $2::float8[])
          ON CONFLICT (request_id) DO NOTHING RETURNING request_id`,
        [waiting.map((i) => i.requestId), waiting.map((i) => i.outcome)],
      );
      const kept = new Set<string>(p.rows.map((row) => row.request_id));
      for (const i of waiting) (kept.has(i.requestId) ? pending : duplicates).push(i.requestId);
    }
    return { accepted: inserted.size, pending, duplicates, late: Number(r.rows[0].late) };
  }

  /**
   * Joins pending outcomes whose predictions have reached the log since (run every analysis
   * tick), and marks those older than the expiry as expired. Returns how many of each.
   */
  async joinPending(expiryMs = PENDING_FEEDBACK_EXPIRY_MS): Promise<{ joined: number; expired: number }> {
    const r = await this.pool.query(
      `
      WITH ready AS (
        SELECT DISTINCT ON (p.request_id) p.request_id, p.deployment, p.version, p.role, p.at, q.outcome
          FROM pending_feedback q JOIN predictions p ON p.request_id = q.request_id
         WHERE q.expired_at IS NULL ORDER BY p.request_id, p.at DESC),
      inserted AS (
        ${insertFeedbackFrom('ready')}
        ON CONFLICT (request_id) DO NOTHING
        RETURNING request_id),
      joined AS (DELETE FROM pending_feedback WHERE request_id IN (SELECT request_id FROM ready) RETURNING 1),
      expired AS (
        UPDATE pending_feedback SET expired_at = now()
         WHERE expired_at IS NULL AND received_at < now() - $1 * interval '1 millisecond'
           AND request_id NOT IN (SELECT request_id FROM ready)
        RETURNING 1)
      SELECT (SELECT count(*) FROM joined)::int AS joined, (SELECT count(*) FROM expired)::int AS expired`,
      [expiryMs],
    );
    return { joined: r.rows[0].joined, expired: r.rows[0].expired };
  }

  /** Outcomes still waiting for their prediction, and those that expired (most recent first). */
  async pending(limit = 100) {
    const counts = await this.pool.query(
      `SELECT count(*) FILTER (WHERE expired_at IS NULL)::int AS pending, count(*) FILTER (WHERE expired_at IS NOT NULL)::int AS expired FROM pending_feedback`,
    );
    const expired = await this.pool.query(
      `SELECT request_id, received_at, expired_at FROM pending_feedback WHERE expired_at IS NOT NULL ORDER BY expired_at DESC LIMIT $1`,
      [limit],
    );
    return {
      pending: counts.rows[0].pending,
      expired: counts.rows[0].expired,
      expiryMs: PENDING_FEEDBACK_EXPIRY_MS,
      expiredIds: expired.rows.map((r) => ({
        requestId: r.request_id,
        receivedAt: r.received_at.toISOString(),
        expiredAt: r.expired_at.toISOString(),
      })),
    };
  }

  /** Outcomes per version for predictions made in [from, to]. */
  async outcomeStats(deployment: string, version: string, fromMs: number, toMs: number): Promise<OutcomeStats> {
    const r = await this.pool.query(
      `SELECT count(*)::int AS n, coalesce(avg(outcome), 0) AS mean, coalesce(var_samp(outcome), 0) AS variance
        FROM feedback WHERE deployment = $1 AND version = $2 AND predicted_at BETWEEN $3 AND $4`,
      [deployment, version, new Date(fromMs), new Date(toMs)],
    );
    return { n: r.rows[0].n, mean: Number(r.rows[0].mean), variance: Number(r.rows[0].variance) };
  }
}

/**
 * The INSERT that records joined outcomes from a CTE of (request_id, deployment, version, role,
 * at, outcome); an outcome is late when its version is no longer part of a running canary.
 */
function insertFeedbackFrom(cte: 'known' | 'ready'): string {
  return `INSERT INTO feedback (request_id, deployment, version, role, outcome, predicted_at, late)
      SELECT k.request_id, k.deployment, k.version, k.role, k.outcome, k.at,
             NOT EXISTS (SELECT 1 FROM canaries c WHERE c.deployment = k.deployment AND c.outcome = 'running' AND (c.version = k.version OR c.baseline_version = k.version))
        FROM ${cte} k`;
}

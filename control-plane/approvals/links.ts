import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import { CanaryError } from '../../common/errors.js';
import type { AwaitingApproval } from '../model/progress.js';

/**
 * Links that approve from an alert: a signed, expiring capability bound to one canary and the
 * one step (or promotion) it waits for. The token is the claims and their HMAC; the key is made
 * once and kept in PostgreSQL, so every replica signs and checks alike. A link approves only by
 * a POST from its own confirmation page (the page's form carries a second HMAC of the token, so
 * a bare cross-site POST cannot), and once: its id is recorded in the approving transaction.
 */
export interface LinkClaims {
  /** Deployment, canary id, what waits (kind, weight) and since when. */
  d: string;
  c: number;
  k: 'step' | 'promote';
  w: number;
  s: number;
  /** Expiry, epoch ms. */
  e: number;
}

const b64 = (b: Buffer) => b.toString('base64url');

export class ApprovalLinks {
  private key: Promise<Buffer> | null = null;

  constructor(
    private readonly pool: pg.Pool,
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private signingKey(): Promise<Buffer> {
    this.key ??= (async () => {
      await this.pool.query(
        `INSERT INTO signing_keys (name, key) VALUES ('approval_links', $1) ON CONFLICT (name) DO NOTHING`,
        [randomBytes(32)],
      );
      const r = await this.pool.query(`SELECT key FROM signing_keys WHERE name = 'approval_links'`);
      return r.rows[0].key as Buffer;
    })().catch((err) => {
      this.key = null; // try again next time (the database may be back)
      throw err;
    });
    return this.key;
  }

  private async mac(what: string): Promise<Buffer> {
    return createHmac('sha256', await this.signingKey())
      .update(what)
      .digest();
  }

  /** A token for what a canary waits for, valid for ttlMs. */
  async create(deployment: string, canaryId: number, a: AwaitingApproval): Promise<string> {
    const claims: LinkClaims = {
      d: deployment,
      c: canaryId,
      k: a.kind,
      w: a.kind === 'step' ? a.weight! : 100,
      s: a.since,
      e: this.now() + this.ttlMs,
    };
    const body = b64(Buffer.from(JSON.stringify(claims)));
    return `${body}.${b64(await this.mac(`link:${body}`))}`;
  }

  /** The claims of a token this control plane signed and that has not expired; else LINK_INVALID / LINK_EXPIRED. */
  async verify(token: string): Promise<LinkClaims & { id: string }> {
    const [body, sig, extra] = token.split('.');
    const invalid = () =>
      new CanaryError(
        'LINK_INVALID',
        'this approval link is not valid (it was altered, or not made by this control plane)',
      );
    if (!body || !sig || extra !== undefined) throw invalid();
    // Compared as text: base64's last character carries spare bits that decoding ignores, so
    // comparing decoded bytes would accept a signature with that character changed.
    if (!sameText(sig, b64(await this.mac(`link:${body}`)))) throw invalid();
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as LinkClaims;
    if (this.now() > claims.e)
      throw new CanaryError(
        'LINK_EXPIRED',
        `this approval link expired at ${new Date(claims.e).toISOString()}; approve with canary approve ${claims.d}, or from the dashboard`,
      );
    return { ...claims, id: sig };
  }

  /** Whether the link with this id has already approved (its page says so instead of offering the button). */
  async used(id: string): Promise<boolean> {
    const r = await this.pool.query('SELECT 1 FROM used_approval_links WHERE id = $1', [id]);
    return (r.rowCount ?? 0) > 0;
  }

  /** The value the confirmation page's form carries: only a page this control plane served has it. */
  async confirmation(token: string): Promise<string> {
    return b64(await this.mac(`confirm:${token}`));
  }

  async confirmed(token: string, value: unknown): Promise<boolean> {
    return typeof value === 'string' && sameText(value, b64(await this.mac(`confirm:${token}`)));
  }
}

function sameText(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

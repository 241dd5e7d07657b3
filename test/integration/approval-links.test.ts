import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { ApprovalLinks } from '../../control-plane/approvals/links.js';
import { migrate } from '../../control-plane/state/db.js';
import { freshSchema } from '../helpers/servers.js';

/** Approval links on PostgreSQL with a fake clock: signed, bound, expiring, and one key for every replica. */

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function pool() {
  const schema = await freshSchema();
  const p = new pg.Pool({ connectionString: schema.url });
  cleanups.push(
    () => schema.drop(),
    () => p.end(),
  );
  await migrate(p);
  return p;
}

const waiting = { kind: 'step' as const, weight: 50, since: 1_000, canaryRequests: 300, reasons: [] };

test('a link verifies while fresh, names what it approves, expires, and is refused when altered', async () => {
  const p = await pool();
  let now = 10_000;
  const links = new ApprovalLinks(p, 24 * 3_600_000, () => now);
  const token = await links.create('iris', 7, waiting);
  const claims = await links.verify(token);
  assert.deepEqual(
    { d: claims.d, c: claims.c, k: claims.k, w: claims.w, s: claims.s, e: claims.e },
    { d: 'iris', c: 7, k: 'step', w: 50, s: 1_000, e: 10_000 + 24 * 3_600_000 },
  );
  // Another replica (another instance, same database) signs with the same key.
  const replica = new ApprovalLinks(p, 24 * 3_600_000, () => now);
  assert.equal((await replica.verify(token)).id, claims.id);
  // Altered claims (another canary) with the old signature: refused.
  const [body, sig] = token.split('.');
  const forged = Buffer.from(
    JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), c: 8 }),
  ).toString('base64url');
  await assert.rejects(links.verify(`${forged}.${sig}`), { code: 'LINK_INVALID' });
  await assert.rejects(links.verify('nonsense'), { code: 'LINK_INVALID' });
  // Every other spelling of the signature's last character (its spare bits decode to the same bytes).
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (const ch of alphabet)
    if (ch !== token.at(-1))
      await assert.rejects(links.verify(token.slice(0, -1) + ch), { code: 'LINK_INVALID' }, `last character ${ch}`);
  // The page's form value: only for this token.
  const confirm = await links.confirmation(token);
  assert.equal(await links.confirmed(token, confirm), true);
  assert.equal(await links.confirmed(token, 'x'), false);
  assert.equal(await links.confirmed(await links.create('iris', 7, { ...waiting, since: 2_000 }), confirm), false);
  // A day later: expired, with what to do instead.
  now += 24 * 3_600_000 + 1;
  await assert.rejects(links.verify(token), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'LINK_EXPIRED');
    assert.match(e.message, /expired at .*canary approve iris/);
    return true;
  });
});

test('a different database (another installation) does not accept the link', async () => {
  const a = new ApprovalLinks(await pool(), 60_000);
  const b = new ApprovalLinks(await pool(), 60_000);
  await assert.rejects(b.verify(await a.create('iris', 1, waiting)), { code: 'LINK_INVALID' });
});

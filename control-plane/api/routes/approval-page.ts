import type { FastifyInstance, FastifyReply } from 'fastify';
import { CanaryError } from '../../../common/errors.js';
import type { ApprovalLinks } from '../../approvals/links.js';
import { approvalTarget } from '../../model/gates.js';
import type { Rollout } from '../../rollout/rollout.js';

/**
 * The page an alert's approval link opens (policy.approvals): it shows what waits and the
 * evidence, and approves only on a POST from its own form — never on a GET, which may be a
 * link preview, a mail scanner or a prefetch. The page is not framable and sends a Referer only
 * to its own origin (the link is a capability; with none at all, a browser's form POST carries
 * `Origin: null`, which the guard rightly refuses). The token is checked again on the POST, with the form's second
 * HMAC (only a page this control plane served carries it) and, by the guard, its Origin.
 */
export function approvalPageRoutes(app: FastifyInstance, opts: { rollout: Rollout; links: ApprovalLinks }): void {
  const { rollout, links } = opts;
  // A form's body, for this page's own POST only (the API itself takes JSON and nothing else).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) =>
    done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  app.get('/approve/:token', { schema: { hide: true } }, async (req, reply) => {
    const token = (req.params as { token: string }).token;
    try {
      const claims = await links.verify(token);
      if (await links.used(claims.id)) throw new CanaryError('LINK_USED', 'this approval link has already been used');
      const d = await rollout.queries.getDeployment(claims.d);
      const waiting = d.canary?.id === claims.c ? d.canary.state.awaitingApproval : null;
      const what = approvalTarget({ kind: claims.k, weight: claims.w });
      if (!waiting || waiting.since !== claims.s || waiting.kind !== claims.k)
        throw new CanaryError(
          'LINK_SUPERSEDED',
          `this link was to ${what} a canary of ${claims.d} that waited since ${new Date(claims.s).toISOString()}; that no longer waits (it was approved, rolled back, or changed by hand). ${d.canary ? `Canary ${d.canary.version} is at ${d.canary.weight}%.` : 'No canary is running.'}`,
        );
      const a = await rollout.queries.analysis(claims.d, 1);
      const rules = (a.latest?.rules ?? [])
        .map((r) => `<tr><td>${esc(r.rule)}</td><td>${esc(r.status)}</td><td>${esc(r.summary)}</td></tr>`)
        .join('');
      return page(
        reply,
        200,
        `Approve: ${what} ${esc(d.canary!.version)} of ${esc(claims.d)}`,
        `<p>Canary <b>${esc(d.canary!.version)}</b> of <b>${esc(claims.d)}</b> (baseline ${esc(d.baselineVersion)}) is at ${d.canary!.weight}% and has been ready to <b>${what}</b> since ${esc(new Date(waiting.since).toISOString())}, on ${waiting.canaryRequests.toLocaleString('en-US')} canary requests.</p>
<p>Latest verdict: <b>${esc(a.latest?.verdict ?? 'none')}</b>${a.latest ? ` at ${esc(a.latest.at ? new Date(a.latest.at).toISOString() : '')}` : ''}</p>
<ul>${(a.latest?.reasons ?? []).map((r) => `<li>${esc(r)}</li>`).join('')}</ul>
<table><thead><tr><th>rule</th><th>status</th><th>evidence</th></tr></thead><tbody>${rules}</tbody></table>
<form method="post" action="/approve/${esc(token)}">
<input type="hidden" name="confirm" value="${esc(await links.confirmation(token))}">
<label>Reason (optional) <input name="reason" maxlength="2000" size="60"></label>
<button type="submit" id="approve">Approve: ${what}</button>
</form>
<p class="muted">This link works once and expires at ${esc(new Date(claims.e).toISOString())}. Opening it changes nothing; only the button does.</p>`,
      );
    } catch (err) {
      return failed(reply, err);
    }
  });

  app.post('/approve/:token', { schema: { hide: true } }, async (req, reply) => {
    const token = (req.params as { token: string }).token;
    const form = (req.body ?? {}) as Record<string, unknown>;
    try {
      const claims = await links.verify(token);
      if (!(await links.confirmed(token, form.confirm)))
        throw new CanaryError(
          'FORBIDDEN',
          'approvals from a link are made with the button on its page (this request did not come from that page)',
        );
      const reason = typeof form.reason === 'string' && form.reason.trim() ? form.reason.trim().slice(0, 2000) : null;
      const d = await rollout.approvals.approveFromLink(claims, reason);
      const done =
        claims.k === 'promote'
          ? `Approved: ${esc(d.baselineVersion)} is now the baseline of ${esc(d.name)}.`
          : `Approved: canary ${esc(d.canary?.version ?? '')} of ${esc(d.name)} is now at ${d.canary?.weight ?? claims.w}%.`;
      return page(reply, 200, 'Approved', `<p id="result">${done}</p>`);
    } catch (err) {
      return failed(reply, err);
    }
  });
}

function failed(reply: FastifyReply, err: unknown) {
  if (!(err instanceof CanaryError)) throw err;
  return page(
    reply,
    err.status,
    'This approval link cannot be used',
    `<p id="result" class="error"><b>${esc(err.code)}</b>: ${esc(err.message)}</p>`,
  );
}

function page(reply: FastifyReply, status: number, title: string, body: string) {
  return reply
    .status(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'same-origin')
    .header('x-frame-options', 'DENY')
    .header(
      'content-security-policy',
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    )
    .send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${title} — canary-mesh</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}td,th{padding:2px 8px;text-align:left;vertical-align:top}.error{color:#b00}.muted{color:#666}button{font-size:1rem;padding:.4rem 1rem}</style>
</head><body><h1>${title}</h1>${body}</body></html>`);
}

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

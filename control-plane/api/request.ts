import type { FastifyReply, FastifyRequest } from 'fastify';
import { CanaryError } from '../../common/errors.js';
import type { Precondition } from '../rollout/deps.js';
import type { DeploymentRow } from '../state/types.js';
import { deploymentView } from './views.js';

/** What a request says beyond its body: who acts, which revision and canary it means, and the answer's ETag. */

/** An ETag for a deployment's revision; If-Match accepts it quoted, weak or bare, or `*`. */
export const etag = (revision: number) => `"${revision}"`;

export function parseIfMatch(header: string | undefined): number | null {
  if (header === undefined || header.trim() === '*') return null;
  const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  if (!m)
    throw new CanaryError(
      'BAD_REQUEST',
      `If-Match: expected the ETag of a deployment (like "12"), got ${JSON.stringify(header.slice(0, 40))}`,
    );
  return Number(m[1]);
}

/** The caller's precondition: If-Match and the body's `canary`. */
export function preconditionOf(req: FastifyRequest): Precondition {
  const ifMatch = parseIfMatch(req.headers['if-match']);
  const canary = (req.body as { canary?: string } | null | undefined)?.canary;
  return { ifMatch, ...(canary !== undefined ? { canary } : {}) };
}

/** Who made a change, for the audit trail: the x-canary-actor header, else "api". */
export const actorOf = (req: FastifyRequest) => {
  const h = req.headers['x-canary-actor'];
  return typeof h === 'string' && h.length > 0 && h.length < 100 ? h : 'api';
};

/** A deployment with its revision as ETag, so the next change can say which state it saw. */
export const withEtag = (reply: FastifyReply, d: DeploymentRow, extra: Record<string, unknown> = {}) =>
  reply.header('etag', etag(d.revision)).send({ ...deploymentView(d), ...extra });

/** The `:name` path parameter. */
export const nameOf = (req: FastifyRequest) => (req.params as { name: string }).name;

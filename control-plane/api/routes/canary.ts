import type { FastifyInstance } from 'fastify';
import type { AppOptions } from '../app.js';
import { actorOf, nameOf, preconditionOf, withEtag } from '../request.js';
import { canaryField, canaryOnlyBody, nameParam, reasonBody, rollbackBody } from '../schemas.js';
import { analysisView, canaryView, eventView } from '../views.js';

/** A deployment's canary: start, traffic, promote, roll back, pause and resume, evaluate, and its analysis, agreement and events. */
export function canaryRoutes(app: FastifyInstance, opts: AppOptions): void {
  const { rollout } = opts;
  app.post(
    '/v1/deployments/:name/canary',
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          required: ['version'],
          additionalProperties: false,
          properties: {
            version: { type: 'string' },
            url: { type: 'string' },
            weight: { type: 'number', minimum: 0, maximum: 100 },
            policy: { type: 'object' },
            force: { type: 'boolean' },
          },
        },
      },
    },
    async (req, reply) =>
      withEtag(
        reply.status(201),
        await rollout.canary.startCanary(nameOf(req), req.body as never, actorOf(req), preconditionOf(req)),
      ),
  );

  app.put(
    '/v1/deployments/:name/traffic',
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          required: ['weight'],
          additionalProperties: false,
          properties: { weight: { type: 'number', minimum: 0, maximum: 100 }, ...canaryField },
        },
      },
    },
    async (req, reply) =>
      withEtag(
        reply,
        await rollout.canary.setTraffic(
          nameOf(req),
          (req.body as { weight: number }).weight,
          actorOf(req),
          preconditionOf(req),
        ),
      ),
  );

  app.post('/v1/deployments/:name/promote', { schema: { params: nameParam, body: reasonBody } }, async (req, reply) => {
    const body = (req.body ?? {}) as { reason?: string };
    return withEtag(
      reply,
      await rollout.canary.promote(nameOf(req), body.reason ?? null, actorOf(req), preconditionOf(req)),
    );
  });

  // What the analysis found ready and held for a person (policy.approvals), carried out at once.
  app.post('/v1/deployments/:name/approve', { schema: { params: nameParam, body: reasonBody } }, async (req, reply) => {
    const body = (req.body ?? {}) as { reason?: string };
    return withEtag(
      reply,
      await rollout.approvals.approve(nameOf(req), body.reason ?? null, actorOf(req), preconditionOf(req)),
    );
  });

  app.post(
    '/v1/deployments/:name/rollback',
    { schema: { params: nameParam, body: rollbackBody } },
    async (req, reply) => {
      const body = (req.body ?? {}) as { reason?: string; target?: 'canary' | 'baseline'; toVersion?: string };
      const d = await rollout.canary.rollback(nameOf(req), body, actorOf(req), preconditionOf(req));
      return withEtag(reply, d, d.warnings.length ? { warnings: d.warnings } : {});
    },
  );

  for (const [path, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    app.post(
      `/v1/deployments/:name/${path}`,
      { schema: { params: nameParam, body: canaryOnlyBody } },
      async (req, reply) =>
        withEtag(reply, await rollout.canary.setPaused(nameOf(req), paused, actorOf(req), preconditionOf(req))),
    );
  }

  app.post('/v1/deployments/:name/evaluate', { schema: { params: nameParam } }, async (req) =>
    rollout.analysis.evaluate((req.params as { name: string }).name, actorOf(req)),
  );

  app.get(
    '/v1/deployments/:name/analysis',
    {
      schema: {
        params: nameParam,
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
        },
      },
    },
    async (req) => {
      const a = await rollout.queries.analysis(
        (req.params as { name: string }).name,
        (req.query as { limit: number }).limit,
      );
      return {
        deployment: a.deployment,
        canary: a.canary ? canaryView(a.canary) : null,
        latest: a.latest ? analysisView(a.latest) : null,
        history: a.history.map(analysisView),
      };
    },
  );

  app.get('/v1/deployments/:name/agreement', { schema: { params: nameParam } }, async (req) =>
    rollout.queries.agreement(nameOf(req)),
  );

  app.get(
    '/v1/deployments/:name/events',
    {
      schema: {
        params: nameParam,
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            version: { type: 'string', minLength: 1, maxLength: 200 },
          },
        },
      },
    },
    async (req) => {
      const q = req.query as { limit: number; version?: string };
      const events = await rollout.queries.events((req.params as { name: string }).name, q.limit, q.version);
      const deliveries = opts.alerts ? await opts.alerts.deliveries(events.map((e) => e.id)) : new Map();
      return { events: events.map((e) => ({ ...eventView(e), deliveries: deliveries.get(e.id) ?? [] })) };
    },
  );
}

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CanaryError } from '../../../common/errors.js';
import { parseFeedback } from '../../state/feedback-store.js';
import type { AppOptions } from '../app.js';

/** Health, metrics, the OpenAPI document, xDS status, feedback and alert sinks. */
export function opsRoutes(app: FastifyInstance, opts: AppOptions): void {
  const { feedback } = opts;
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // Liveness: the process answers. Readiness (and /healthz): what it depends on is reachable,
  // so a load balancer stops sending to a replica whose database is down.
  app.get('/livez', async () => ({ status: 'ok' }));

  const ready = async (_req: FastifyRequest, reply: FastifyReply) => {
    const failing = opts.notReady ? await opts.notReady() : [];
    if (failing.length)
      return reply.status(503).send({
        status: 'not ready',
        failing,
        error: { code: 'NOT_READY', message: `not reachable: ${failing.join(', ')}` },
      });
    return { status: 'ok' };
  };

  app.get('/readyz', ready);

  app.get('/metrics', async (_req, reply) => {
    if (!opts.registry) throw new CanaryError('NOT_FOUND', 'no metrics on this control plane');
    return reply.type(opts.registry.contentType).send(await opts.registry.metrics());
  });

  app.get('/healthz', ready);

  app.get('/v1/xds', async () => {
    if (!opts.xds) return { enabled: false };
    const snapshot = opts.xds.cache.get('*');
    return {
      enabled: true,
      versions: snapshot?.versions ?? null,
      counters: opts.xds.counters,
      recentNacks: opts.xds.lastNack,
    };
  });

  // Outcomes arrive after predictions, joined by the x-request-id the proxy returned.
  app.post('/v1/feedback', { bodyLimit: 1024 * 1024 }, async (req) => feedback.record(parseFeedback(req.body)));

  app.get('/v1/feedback/pending', async () => feedback.pending());

  app.post(
    '/v1/alerts/sinks',
    {
      schema: {
        body: {
          type: 'object',
          required: ['url'],
          additionalProperties: false,
          properties: {
            deployment: { type: 'string' },
            kind: { type: 'string', enum: ['webhook', 'slack'] },
            url: { type: 'string' },
            secret: { type: 'string' },
            events: { type: 'array', items: { type: 'string' } },
          },
        },
      },
    },
    async (req, reply) => {
      if (!opts.alerts) throw new CanaryError('NOT_FOUND', 'alerts are not enabled on this control plane');
      return reply.status(201).send(await opts.alerts.addSink(req.body as never));
    },
  );

  app.get('/v1/alerts/sinks', async () => ({ sinks: opts.alerts ? await opts.alerts.listSinks() : [] }));

  const sinkParam = {
    type: 'object',
    properties: { id: { type: 'integer', minimum: 1 } },
    required: ['id'],
  } as const;

  const alerts = () => {
    if (!opts.alerts) throw new CanaryError('NOT_FOUND', 'alerts are not enabled on this control plane');
    return opts.alerts;
  };

  app.delete('/v1/alerts/sinks/:id', { schema: { params: sinkParam } }, async (req, reply) => {
    await alerts().deleteSink((req.params as { id: number }).id);
    return reply.status(204).send();
  });

  app.post(
    '/v1/alerts/sinks/:id/test',
    {
      schema: { params: sinkParam, body: { type: ['object', 'null'], additionalProperties: false, properties: {} } },
    },
    async (req) => alerts().testSink((req.params as { id: number }).id),
  );
}

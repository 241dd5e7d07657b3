import { timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from '../../common/logger.js';
import { CanaryError } from '../../common/errors.js';
import type { RolloutService } from '../rollout/service.js';
import { analysisView, canaryView, deploymentView, eventView, versionView } from './views.js';
import { registerDashboard } from './dashboard.js';
import type { XdsServer } from '../xds/server.js';
import type { AlertDispatcher } from '../alerts/alerts.js';
import { parseFeedback, recordFeedback } from '../metrics/business.js';

export interface AppOptions {
  service: RolloutService;
  /** When set, every mutation needs `Authorization: Bearer <token>`. */
  token: string | null;
  logger: Logger;
  /** The xDS server, for its status endpoint. */
  xds?: XdsServer | null;
  alerts?: AlertDispatcher | null;
}

const nameParam = { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 63 } }, required: ['name'] } as const;
const upstream = { type: 'object', required: ['version', 'url'], additionalProperties: false, properties: { version: { type: 'string' }, url: { type: 'string' }, metadata: { type: 'object' } } } as const;
const reasonBody = { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 2000 }, toVersion: { type: 'string' } } } as const;

function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Who made a change, for the audit trail: the x-canary-actor header, else "api". */
const actorOf = (req: FastifyRequest) => {
  const h = req.headers['x-canary-actor'];
  return typeof h === 'string' && h.length > 0 && h.length < 100 ? h : 'api';
};

/**
 * Builds the REST API (DESIGN.md §3) and the dashboard. Never listens itself: main.ts
 * does, and tests use app.inject().
 */
export function buildApp(opts: AppOptions): FastifyInstance {
  const { service, token } = opts;
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger, bodyLimit: 1024 * 1024,
    // Per-request logs would drown the audit-relevant ones; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Unknown fields are an error, not silently dropped: a typo in a policy must not pass.
    ajv: { customOptions: { removeAdditional: false } },
  }) as unknown as FastifyInstance;

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof CanaryError) return reply.status(err.status).send(err.toJSON());
    if (err.validation) return reply.status(400).send({ error: { code: 'BAD_REQUEST', message: err.message } });
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: { code: 'BAD_REQUEST', message: err.message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: { code: 'INTERNAL', message: 'internal error; see the control plane log' } });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } }));

  app.addHook('onRequest', async (req) => {
    if (!token || req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
    const header = req.headers.authorization;
    if (!header) throw new CanaryError('UNAUTHORIZED', 'this API needs Authorization: Bearer <CANARY_API_TOKEN> for changes');
    const m = /^Bearer (.+)$/.exec(header);
    if (!m || !tokenMatches(m[1], token)) throw new CanaryError('FORBIDDEN', 'the bearer token is not valid');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/v1/xds', async () => {
    if (!opts.xds) return { enabled: false };
    const snapshot = opts.xds.cache.get('*');
    return { enabled: true, versions: snapshot?.versions ?? null, counters: opts.xds.counters, recentNacks: opts.xds.lastNack };
  });

  app.get('/v1/deployments', async () => ({ deployments: (await service.listDeployments()).map(deploymentView) }));

  app.post('/v1/deployments', {
    schema: { body: { type: 'object', required: ['name', 'baseline'], additionalProperties: false, properties: { name: { type: 'string' }, baseline: upstream, policy: { type: 'object' }, retryCanaryOnBaseline: { type: 'boolean' } } } },
  }, async (req, reply) => {
    const d = await service.createDeployment(req.body as never, actorOf(req));
    return reply.status(201).send(deploymentView(d));
  });

  app.get('/v1/deployments/:name', { schema: { params: nameParam } }, async (req) => deploymentView(await service.getDeployment((req.params as { name: string }).name)));

  app.post('/v1/deployments/:name/versions', { schema: { params: nameParam, body: upstream } }, async (req, reply) => {
    const { version, created } = await service.registerVersion((req.params as { name: string }).name, req.body as never, actorOf(req));
    return reply.status(created ? 201 : 200).send(versionView(version));
  });

  app.get('/v1/deployments/:name/versions', { schema: { params: nameParam } }, async (req) => ({ versions: (await service.versions((req.params as { name: string }).name)).map(versionView) }));

  app.post('/v1/deployments/:name/canary', {
    schema: { params: nameParam, body: { type: 'object', required: ['version'], additionalProperties: false, properties: { version: { type: 'string' }, url: { type: 'string' }, weight: { type: 'number', minimum: 0, maximum: 100 }, policy: { type: 'object' } } } },
  }, async (req, reply) => reply.status(201).send(deploymentView(await service.startCanary((req.params as { name: string }).name, req.body as never, actorOf(req)))));

  app.put('/v1/deployments/:name/traffic', {
    schema: { params: nameParam, body: { type: 'object', required: ['weight'], additionalProperties: false, properties: { weight: { type: 'number', minimum: 0, maximum: 100 } } } },
  }, async (req) => deploymentView(await service.setTraffic((req.params as { name: string }).name, (req.body as { weight: number }).weight, actorOf(req))));

  app.post('/v1/deployments/:name/promote', { schema: { params: nameParam, body: reasonBody } }, async (req) => {
    const body = (req.body ?? {}) as { reason?: string };
    return deploymentView(await service.promote((req.params as { name: string }).name, body.reason ?? null, actorOf(req)));
  });

  app.post('/v1/deployments/:name/rollback', { schema: { params: nameParam, body: reasonBody } }, async (req) => {
    const body = (req.body ?? {}) as { reason?: string; toVersion?: string };
    return deploymentView(await service.rollback((req.params as { name: string }).name, body.reason ?? null, body.toVersion, actorOf(req)));
  });

  for (const [path, paused] of [['pause', true], ['resume', false]] as const) {
    app.post(`/v1/deployments/:name/${path}`, { schema: { params: nameParam } }, async (req) => deploymentView(await service.setPaused((req.params as { name: string }).name, paused, actorOf(req))));
  }

  app.post('/v1/deployments/:name/evaluate', { schema: { params: nameParam } }, async (req) => service.evaluate((req.params as { name: string }).name, actorOf(req)));

  app.get('/v1/deployments/:name/analysis', {
    schema: { params: nameParam, querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } } },
  }, async (req) => {
    const a = await service.analysis((req.params as { name: string }).name, (req.query as { limit: number }).limit);
    return { deployment: a.deployment, canary: a.canary ? canaryView(a.canary) : null, latest: a.latest ? analysisView(a.latest) : null, history: a.history.map(analysisView) };
  });

  app.get('/v1/deployments/:name/events', {
    schema: { params: nameParam, querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } } } },
  }, async (req) => {
    const events = await service.events((req.params as { name: string }).name, (req.query as { limit: number }).limit);
    const deliveries = opts.alerts ? await opts.alerts.deliveries(events.map((e) => e.id)) : new Map();
    return { events: events.map((e) => ({ ...eventView(e), deliveries: deliveries.get(e.id) ?? [] })) };
  });

  // Outcomes arrive after predictions, joined by the x-request-id the proxy returned.
  app.post('/v1/feedback', { bodyLimit: 1024 * 1024 }, async (req) => recordFeedback(service.pool, parseFeedback(req.body)));

  app.post('/v1/alerts/sinks', {
    schema: { body: { type: 'object', required: ['url'], additionalProperties: false, properties: { deployment: { type: 'string' }, kind: { type: 'string', enum: ['webhook', 'slack'] }, url: { type: 'string' }, secret: { type: 'string' }, events: { type: 'array', items: { type: 'string' } } } } },
  }, async (req, reply) => {
    if (!opts.alerts) throw new CanaryError('NOT_FOUND', 'alerts are not enabled on this control plane');
    return reply.status(201).send(await opts.alerts.addSink(req.body as never));
  });
  app.get('/v1/alerts/sinks', async () => ({ sinks: opts.alerts ? await opts.alerts.listSinks() : [] }));

  registerDashboard(app);
  return app;
}

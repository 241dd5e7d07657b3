import { readFileSync } from 'node:fs';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Registry } from 'prom-client';
import { CanaryError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Precondition } from '../rollout/deps.js';
import type { Rollout } from '../rollout/rollout.js';
import type { DeploymentRow } from '../state/types.js';
import { registerDashboard } from './dashboard.js';
import { registerGuard } from './guard.js';
import { analysisView, canaryView, deploymentView, eventView, versionView } from './views.js';

const API_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

import type { AlertDispatcher } from '../alerts/alerts.js';
import { type FeedbackStore, parseFeedback } from '../state/feedback-store.js';
import type { XdsServer } from '../xds/server.js';

export interface AppOptions {
  rollout: Rollout;
  feedback: FeedbackStore;
  /** When set, every /v1 route needs `Authorization: Bearer <token>`, reads included. */
  token: string | null;
  allowedOrigins?: string[];
  allowedHosts?: string[];
  /** The control plane's metrics, served at /metrics. */
  registry?: Registry;
  /** Readiness of what the API depends on (database, Redis): names of the unreachable ones. */
  notReady?: () => Promise<string[]>;
  logger: Logger;
  /** The xDS server, for its status endpoint. */
  xds?: XdsServer | null;
  alerts?: AlertDispatcher | null;
}

const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 63 } },
  required: ['name'],
} as const;
const upstream = {
  type: 'object',
  required: ['version', 'url'],
  additionalProperties: false,
  properties: { version: { type: 'string' }, url: { type: 'string' }, metadata: { type: 'object' } },
} as const;
/** `canary` in a body names the canary the caller means: another one running is 409 CANARY_MISMATCH. */
const canaryField = { canary: { type: 'string', minLength: 1 } } as const;
const reasonBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: 2000 }, ...canaryField },
} as const;
const rollbackBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    reason: { type: 'string', maxLength: 2000 },
    target: { type: 'string', enum: ['canary', 'baseline'] },
    toVersion: { type: 'string' },
    force: { type: 'boolean' },
    ...canaryField,
  },
} as const;
const canaryOnlyBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { ...canaryField },
} as const;

/** A deployment's data-plane settings (checked in detail by resolveSettings, which names the field). */
const settingsFields = {
  retryCanaryOnBaseline: { type: 'boolean' },
  timeouts: {
    type: 'object',
    additionalProperties: false,
    properties: { headers: { type: ['string', 'number'] }, idle: { type: ['string', 'number'] } },
  },
  hedgeCanaryAfter: { type: ['string', 'number'] },
  retryMethods: { type: 'array', items: { type: 'string' } },
  websockets: { type: 'boolean' },
  allowForcedVariant: { type: 'boolean' },
} as const;

/** An ETag for a deployment's revision; If-Match accepts it quoted, weak or bare, or `*`. */
const etag = (revision: number) => `"${revision}"`;
function parseIfMatch(header: string | undefined): number | null {
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
function preconditionOf(req: FastifyRequest): Precondition {
  const ifMatch = parseIfMatch(req.headers['if-match']);
  const canary = (req.body as { canary?: string } | null | undefined)?.canary;
  return { ifMatch, ...(canary !== undefined ? { canary } : {}) };
}

/**
 * A validation error in words a person can act on: the field and what is expected, without
 * the schema's internals ("body/weight must be <= 100" becomes "weight: must be at most 100").
 */
function describeValidation(
  errors: { instancePath?: string; keyword: string; params: Record<string, unknown>; message?: string }[],
  part?: string,
): string {
  const e = errors[0];
  const at = (e.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  const field = (name?: unknown) => [at, name].filter(Boolean).join('.') || part || 'body';
  switch (e.keyword) {
    case 'additionalProperties':
      return `${field(e.params.additionalProperty)}: unknown field`;
    case 'required':
      return `${field(e.params.missingProperty)}: required`;
    case 'type':
      return `${field()}: expected ${String(e.params.type).replace(',', ' or ')}`;
    case 'minimum':
      return `${field()}: must be at least ${e.params.limit}`;
    case 'maximum':
      return `${field()}: must be at most ${e.params.limit}`;
    case 'minLength':
      return `${field()}: must not be empty`;
    case 'maxLength':
      return `${field()}: at most ${e.params.limit} characters`;
    case 'enum':
      return `${field()}: expected one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${field()}: ${e.message ?? 'invalid'}`;
  }
}

/** Bodies are validated strictly ("10" is not a number, null is not 0); query strings are text, so they are converted. */
const strictAjv = new Ajv({
  coerceTypes: false,
  removeAdditional: false,
  allErrors: false,
  useDefaults: true,
  allowUnionTypes: true,
});
const looseAjv = new Ajv({
  coerceTypes: 'array',
  removeAdditional: false,
  allErrors: false,
  useDefaults: true,
  allowUnionTypes: true,
});

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
  const { rollout, feedback, token } = opts;
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // Per-request logs would drown the audit-relevant ones; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  // Unknown fields are an error, not silently dropped: a typo in a policy must not pass.
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strictAjv : looseAjv).compile(schema));
  // An empty JSON body is no body: optional bodies are optional, with or without the header.
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '' || (typeof body === 'string' && body.trim() === '')) return done(null, null);
    json(req, body as string, done);
  });

  app.setErrorHandler(
    (
      err: Error & { validation?: unknown; validationContext?: string; statusCode?: number; code?: string },
      req,
      reply,
    ) => {
      if (err instanceof CanaryError) return reply.status(err.status).send(err.toJSON());
      if (err.validation)
        return reply.status(400).send({
          error: { code: 'BAD_REQUEST', message: describeValidation(err.validation as never, err.validationContext) },
        });
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
        return reply.status(413).send({
          error: { code: 'BODY_TOO_LARGE', message: 'the request body is larger than the API accepts (1 MiB)' },
        });
      if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
        return reply.status(415).send({
          error: {
            code: 'UNSUPPORTED_MEDIA_TYPE',
            message: 'changes must be sent with content-type: application/json',
          },
        });
      if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
        return reply.status(err.statusCode).send({ error: { code: 'BAD_REQUEST', message: err.message } });
      }
      req.log.error({ err }, 'request failed');
      return reply
        .status(500)
        .send({ error: { code: 'INTERNAL', message: 'internal error; see the control plane log' } });
    },
  );
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } }),
  );

  registerGuard(app, { token, allowedOrigins: opts.allowedOrigins ?? [], allowedHosts: opts.allowedHosts ?? [] });

  // The OpenAPI 3.1 document is generated from the same schemas that validate the requests
  // (one source of truth): /openapi.json, and a human page at /docs.
  app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'canary-mesh',
        version: API_VERSION,
        description:
          'Ship new model versions safely: deployments, versions, canaries, their analysis and audit trail. Errors are {"error": {"code", "message"}}.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'CANARY_API_TOKEN, when set: every /v1 route needs it',
          },
        },
      },
      security: [{ bearer: [] }],
    },
  });
  app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  // Routes are declared in a plugin registered after the generator, so it sees every one.
  app.register(async (app) => {
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

    app.get('/v1/deployments', async () => ({
      deployments: (await rollout.queries.listDeployments()).map(deploymentView),
    }));

    app.post(
      '/v1/deployments',
      {
        schema: {
          body: {
            type: 'object',
            required: ['name', 'baseline'],
            additionalProperties: false,
            properties: { name: { type: 'string' }, baseline: upstream, policy: { type: 'object' }, ...settingsFields },
          },
        },
      },
      async (req, reply) => {
        const d = await rollout.deployments.createDeployment(req.body as never, actorOf(req));
        return reply.status(201).send(deploymentView(d));
      },
    );

    // A deployment with its revision as ETag, so the next change can say which state it saw.
    const withEtag = (reply: FastifyReply, d: DeploymentRow) =>
      reply.header('etag', etag(d.revision)).send(deploymentView(d));
    const nameOf = (req: FastifyRequest) => (req.params as { name: string }).name;

    app.get('/v1/deployments/:name', { schema: { params: nameParam } }, async (req, reply) =>
      withEtag(reply, await rollout.queries.getDeployment(nameOf(req))),
    );

    app.patch(
      '/v1/deployments/:name',
      {
        schema: {
          params: nameParam,
          body: { type: 'object', additionalProperties: false, properties: settingsFields },
        },
      },
      async (req, reply) =>
        withEtag(
          reply,
          await rollout.deployments.updateSettings(nameOf(req), req.body as never, actorOf(req), preconditionOf(req)),
        ),
    );

    app.post(
      '/v1/deployments/:name/versions',
      { schema: { params: nameParam, body: upstream } },
      async (req, reply) => {
        const { version, created } = await rollout.deployments.registerVersion(
          nameOf(req),
          req.body as never,
          actorOf(req),
          preconditionOf(req),
        );
        return reply.status(created ? 201 : 200).send(versionView(version));
      },
    );

    app.get('/v1/deployments/:name/versions', { schema: { params: nameParam } }, async (req) => ({
      versions: (await rollout.queries.versions((req.params as { name: string }).name)).map(versionView),
    }));

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

    app.post(
      '/v1/deployments/:name/promote',
      { schema: { params: nameParam, body: reasonBody } },
      async (req, reply) => {
        const body = (req.body ?? {}) as { reason?: string };
        return withEtag(
          reply,
          await rollout.canary.promote(nameOf(req), body.reason ?? null, actorOf(req), preconditionOf(req)),
        );
      },
    );

    app.post(
      '/v1/deployments/:name/rollback',
      { schema: { params: nameParam, body: rollbackBody } },
      async (req, reply) => {
        const body = (req.body ?? {}) as { reason?: string; target?: 'canary' | 'baseline'; toVersion?: string };
        return withEtag(reply, await rollout.canary.rollback(nameOf(req), body, actorOf(req), preconditionOf(req)));
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
            properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
          },
        },
      },
      async (req) => {
        const events = await rollout.queries.events(
          (req.params as { name: string }).name,
          (req.query as { limit: number }).limit,
        );
        const deliveries = opts.alerts ? await opts.alerts.deliveries(events.map((e) => e.id)) : new Map();
        return { events: events.map((e) => ({ ...eventView(e), deliveries: deliveries.get(e.id) ?? [] })) };
      },
    );

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

    app.delete('/v1/deployments/:name', { schema: { params: nameParam } }, async (req, reply) => {
      await rollout.deployments.deleteDeployment(nameOf(req), actorOf(req), preconditionOf(req));
      return reply.status(204).send();
    });
    app.delete(
      '/v1/deployments/:name/versions/:version',
      {
        schema: {
          params: {
            type: 'object',
            properties: { name: { type: 'string' }, version: { type: 'string' } },
            required: ['name', 'version'],
          },
        },
      },
      async (req, reply) => {
        await rollout.deployments.deleteVersion(
          nameOf(req),
          (req.params as { version: string }).version,
          actorOf(req),
          preconditionOf(req),
        );
        return reply.status(204).send();
      },
    );

    registerDashboard(app);
  });
  return app;
}

import { readFileSync } from 'node:fs';
import http from 'node:http';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Registry } from 'prom-client';
import { CanaryError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Rollout } from '../rollout/rollout.js';
import { registerDashboard } from './dashboard.js';
import { registerGuard } from './guard.js';

const API_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

import type { AlertDispatcher } from '../alerts/alerts.js';
import type { ApprovalLinks } from '../approvals/links.js';
import type { FeedbackStore } from '../state/feedback-store.js';
import type { XdsServer } from '../xds/server.js';
import { approvalPageRoutes } from './routes/approval-page.js';
import { canaryRoutes } from './routes/canary.js';
import { deploymentRoutes } from './routes/deployments.js';
import { opsRoutes } from './routes/ops.js';

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
  /** Approval links in alerts, and the page they open (policy.approvals). */
  links?: ApprovalLinks | null;
  /** The client header timeout (CANARY_CLIENT_HEADER_TIMEOUT). */
  headersTimeoutMs?: number;
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

/**
 * Builds the REST API (DESIGN.md §3) and the dashboard. Never listens itself: main.ts
 * does, and tests use app.inject().
 */
export function buildApp(opts: AppOptions): FastifyInstance {
  const { token } = opts;
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    // Node checks its header and request timeouts every 30 s unless told otherwise: a client
    // trickling header lines would hold a socket up to 30 s past the timeout.
    serverFactory: (handler) =>
      http.createServer(
        {
          headersTimeout: opts.headersTimeoutMs ?? 60_000,
          requestTimeout: Math.max(5 * 60_000, opts.headersTimeoutMs ?? 0),
          connectionsCheckingInterval: 1000,
        },
        handler,
      ),
    bodyLimit: 1024 * 1024,
    // An approval link's token is a path parameter of ~200 characters (names are capped at 63 by the schemas).
    routerOptions: { maxParamLength: 512 },
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
    opsRoutes(app, opts);
    deploymentRoutes(app, opts);
    canaryRoutes(app, opts);
    registerDashboard(app);
  });
  // Its own scope: the form parser it adds is for its page alone.
  const links = opts.links;
  if (links) app.register(async (app) => approvalPageRoutes(app, { rollout: opts.rollout, links }));
  return app;
}

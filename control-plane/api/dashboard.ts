import type { FastifyInstance } from 'fastify';

/** The dashboard is a static page that talks to the REST API (built out in its own issue). */
export function registerDashboard(app: FastifyInstance): void {
  app.get('/', async (_req, reply) => reply.type('text/html').send(`<!doctype html><meta charset="utf-8"><title>canary-mesh</title>
<p>canary-mesh control plane. REST API under <code>/v1</code>: <a href="/v1/deployments">/v1/deployments</a>.</p>`));
}

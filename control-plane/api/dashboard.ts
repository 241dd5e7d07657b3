import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** One static page that talks to the REST API; read once at start. */
const PAGE = readFileSync(new URL('./dashboard.html', import.meta.url), 'utf8');

export function registerDashboard(app: FastifyInstance): void {
  app.get('/', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(PAGE),
  );
}

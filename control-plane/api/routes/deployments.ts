import type { FastifyInstance } from 'fastify';
import type { AppOptions } from '../app.js';
import { actorOf, nameOf, preconditionOf, withEtag } from '../request.js';
import { nameParam, settingsFields, upstream } from '../schemas.js';
import { deploymentView, versionView } from '../views.js';

/** Deployments and their versions: create, read (with ETag), change settings, register, delete. */
export function deploymentRoutes(app: FastifyInstance, opts: AppOptions): void {
  const { rollout } = opts;
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

  app.post('/v1/deployments/:name/versions', { schema: { params: nameParam, body: upstream } }, async (req, reply) => {
    const { version, created } = await rollout.deployments.registerVersion(
      nameOf(req),
      req.body as never,
      actorOf(req),
      preconditionOf(req),
    );
    return reply.status(created ? 201 : 200).send(versionView(version));
  });

  app.get('/v1/deployments/:name/versions', { schema: { params: nameParam } }, async (req) => ({
    versions: (await rollout.queries.versions((req.params as { name: string }).name)).map(versionView),
  }));

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
}

import { CanaryError } from '../../../common/errors.js';
import { resolvePolicy } from '../../model/policy.js';
import { resolveSettings, type SettingsInput } from '../../model/settings.js';
import type { DeploymentRow } from '../../state/types.js';
import type { Changes } from '../changes.js';
import { type Precondition, type RolloutDeps, RolloutPart } from '../deps.js';
import { deploymentOrThrow } from '../queries.js';
import { allowedUrl, checkName, checkUrl } from '../validation.js';

/** What people do to deployments and versions (REST, CLI, dashboard): each one change with its event. */
export class DeploymentCommands extends RolloutPart {
  constructor(
    deps: RolloutDeps,
    private readonly changes: Changes,
  ) {
    super(deps);
  }

  async createDeployment(
    body: {
      name: unknown;
      baseline: { version: unknown; url: unknown; metadata?: unknown };
      policy?: unknown;
    } & SettingsInput,
    actor: string,
  ): Promise<DeploymentRow> {
    const name = checkName(body.name, 'name');
    const version = checkName(body.baseline?.version, 'baseline.version');
    const url = await allowedUrl(this.deps.policy, checkUrl(body.baseline?.url, 'baseline.url'), 'baseline.url');
    resolvePolicy(body.policy); // validate now; stored as given and resolved when a canary starts
    const { settings, retryCanaryOnBaseline } = resolveSettings(body, { settings: {}, retryCanaryOnBaseline: true });
    await this.changes.transaction(async (q) => {
      await this.store.insertDeployment(q, name, version, body.policy ?? {}, retryCanaryOnBaseline, settings);
      await this.store.insertVersion(q, name, version, url, body.baseline.metadata, 'serving');
      await this.changes.event(q, name, 'deployment_created', actor, null, null, { baseline: { version, url } });
    });
    await this.changes.publishRoutes();
    return deploymentOrThrow(this.store, name);
  }

  /** Changes the deployment's data-plane settings (timeouts, hedging, retries, WebSockets); the proxies apply them with the next route table. */
  async updateSettings(
    name: string,
    input: SettingsInput,
    actor: string,
    pre: Precondition = {},
  ): Promise<DeploymentRow> {
    await this.changes.change(
      name,
      async (q, d) => {
        const next = resolveSettings(input, d);
        await this.store.setSettings(q, name, next.settings, next.retryCanaryOnBaseline);
        await this.changes.event(
          q,
          name,
          'settings_changed',
          actor,
          null,
          { settings: d.settings, retryCanaryOnBaseline: d.retryCanaryOnBaseline },
          next,
        );
      },
      pre,
    );
    return deploymentOrThrow(this.store, name);
  }

  /** Deletes a deployment that runs no canary. Its events stay in the audit trail, with a last `deployment_deleted`. */
  async deleteDeployment(name: string, actor: string, pre: Precondition = {}): Promise<void> {
    await this.changes.change(
      name,
      async (q, d) => {
        if (d.canary)
          throw new CanaryError(
            'CANARY_RUNNING',
            `canary ${d.canary.version} is running for ${name}: promote or roll it back before deleting the deployment`,
          );
        await this.changes.event(q, name, 'deployment_deleted', actor, null, { baseline: d.baselineVersion }, null);
        await this.store.deleteDeployment(q, name);
      },
      { ...pre, deleted: true },
    );
  }

  /** Deletes a version that is neither serving nor the running canary. */
  async deleteVersion(name: string, version: string, actor: string, pre: Precondition = {}): Promise<void> {
    await this.changes.change(
      name,
      async (q, d) => {
        const v = await this.store.getVersion(name, version, q);
        if (!v) throw new CanaryError('VERSION_NOT_FOUND', `version ${version} is not registered for ${name}`);
        if (v.version === d.baselineVersion || d.canary?.version === version)
          throw new CanaryError(
            'VERSION_IN_USE',
            `version ${version} is ${v.version === d.baselineVersion ? 'serving as the baseline' : 'the running canary'} of ${name}`,
          );
        await this.store.deleteVersion(q, name, version);
        await this.changes.event(
          q,
          name,
          'version_deleted',
          actor,
          null,
          { version, url: v.url, state: v.state },
          null,
        );
      },
      pre,
    );
  }

  async registerVersion(
    name: string,
    body: { version: unknown; url: unknown; metadata?: unknown },
    actor: string,
    pre: Precondition = {},
  ) {
    const version = checkName(body.version, 'version');
    const url = await allowedUrl(this.deps.policy, checkUrl(body.url, 'url'), 'url');
    if (
      body.metadata !== undefined &&
      (typeof body.metadata !== 'object' || body.metadata === null || Array.isArray(body.metadata))
    ) {
      throw new CanaryError('BAD_REQUEST', 'metadata: expected an object (trainedAt, dataVersion, metrics, …)');
    }
    return this.changes.change(
      name,
      async (q) => {
        const existing = await this.store.getVersion(name, version, q);
        if (existing) {
          if (existing.url !== url)
            throw new CanaryError('VERSION_EXISTS', `version ${version} is already registered at ${existing.url}`);
          return { version: existing, created: false };
        }
        await this.store.insertVersion(q, name, version, url, body.metadata, 'registered');
        await this.changes.event(q, name, 'version_registered', actor, null, null, {
          version,
          url,
          metadata: body.metadata ?? {},
        });
        return { version: (await this.store.getVersion(name, version, q))!, created: true };
      },
      pre,
    );
  }
}

import { Analysis } from './analysis.js';
import { Changes } from './changes.js';
import { ApprovalCommands } from './commands/approvals.js';
import { CanaryCommands } from './commands/canary.js';
import { DeploymentCommands } from './commands/deployments.js';
import type { RolloutDeps } from './deps.js';
import { Executor } from './executor.js';
import { Measure } from './measure.js';
import { Queries } from './queries.js';
import { Transitions } from './transitions.js';

/**
 * The rollout core, wired: the commands people call, the read models, and the analysis
 * (measure → decide → execute), over one unit of work that writes events and publishes routes.
 */
export interface Rollout {
  deployments: DeploymentCommands;
  canary: CanaryCommands;
  approvals: ApprovalCommands;
  queries: Queries;
  analysis: Analysis;
  changes: Changes;
}

export function createRollout(deps: RolloutDeps): Rollout {
  const changes = new Changes(deps);
  const transitions = new Transitions(deps.store, changes);
  const measure = new Measure(deps);
  const executor = new Executor(deps.store, changes, transitions);
  return {
    deployments: new DeploymentCommands(deps, changes),
    canary: new CanaryCommands(deps, changes, transitions, measure),
    approvals: new ApprovalCommands(deps, changes, transitions),
    queries: new Queries(deps),
    analysis: new Analysis(deps, measure, executor),
    changes,
  };
}

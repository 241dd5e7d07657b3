import { canaryCommands } from './commands/canary.js';
import { deploymentCommands } from './commands/deployments.js';

/** Runs a client command (DESIGN.md §3) against the REST API; false when `command` is not one. */
export async function runClientCommand(command: string, rest: string[]): Promise<boolean> {
  return (await deploymentCommands(command, rest)) || (await canaryCommands(command, rest));
}

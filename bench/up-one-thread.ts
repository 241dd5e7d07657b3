// The `canary up` stack composed on one thread (startStack), for bench/startup.ts to compare
// with the command's own start-up. Prints the same ready line and stops on SIGTERM.
import { loadControlPlaneConfig, loadProxyConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { startStack } from '../control-plane/main.js';

const stack = await startStack(loadControlPlaneConfig(), loadProxyConfig(), { logger: createLogger('canary', 'warn') });
process.stdout.write(`${JSON.stringify({ ready: true, component: 'up', api: stack.controlPlane.url })}\n`);
process.once('SIGTERM', () => void stack.close().then(() => process.exit(0)));

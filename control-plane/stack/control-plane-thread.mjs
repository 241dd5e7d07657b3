// Entry of the control plane's thread: a worker does not inherit the TypeScript loader the
// main thread registered (bin/canary.js), so it registers its own before loading the sources.
import { register } from 'tsx/esm/api';

register();
await import('./control-plane-thread.ts');

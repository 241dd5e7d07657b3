#!/usr/bin/env node
// The `canary` command. The project runs its TypeScript sources directly through tsx's
// loader, so there is no build step between a checkout and a working CLI.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');

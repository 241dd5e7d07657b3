import { type Logger, pino } from 'pino';

export type { Logger };

/** JSON logs (pino). LOG_LEVEL sets the level; tests pass level "silent". */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level });
}

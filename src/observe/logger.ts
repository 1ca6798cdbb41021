// Operational log (JSON lines on stderr): start, reloads, errors. The audit log is separate.
// Redaction is a second line of defence; nothing logs a secret on purpose.
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = ['token', 'secret', 'password', 'authorization', 'apiKey', '*.token', '*.secret', '*.password', '*.authorization', 'headers.authorization', 'headers["x-api-key"]'];

export function createLogger(level: string = 'info', destination: NodeJS.WritableStream | number = 2): Logger {
  const dest = typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination;
  return pino(
    {
      level,
      base: { svc: 'keygate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    dest,
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

// The process shell for `keygate serve`: start an instance, wire signals (SIGHUP reloads,
// SIGTERM/SIGINT drain then exit 0), and make sure no error ever ends in a stack trace on a
// user's terminal. The only place besides the CLI entry that ends the process.
import { formatProblem, SourceError } from './config/source.js';
import { startKeygate, type StartOptions } from './instance.js';
import { createLogger } from './observe/logger.js';

export async function serveMain(opts: StartOptions): Promise<void> {
  const logger = opts.logger ?? createLogger(process.env.KEYGATE_LOG_LEVEL ?? 'info');
  let instance;
  try {
    instance = await startKeygate({ ...opts, logger });
  } catch (err) {
    if (err instanceof SourceError) {
      for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
      logger.fatal({ problems: err.problems.length }, 'configuration has errors; not starting');
    } else {
      const e = err as NodeJS.ErrnoException;
      logger.fatal({ err: e.message, code: e.code }, e.code === 'EADDRINUSE' ? 'address already in use' : 'cannot start');
    }
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining: readiness is now 503, finishing in-flight requests');
    instance.drain().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'error while draining');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void instance.reload('SIGHUP'));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: err.message, stack: err.stack }, 'uncaught exception; exiting');
    process.exit(70);
  });
}

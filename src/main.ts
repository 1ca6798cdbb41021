// The process shell for `keygate serve`: start an instance, wire signals (SIGHUP reloads,
// SIGTERM/SIGINT drain then exit 0), and make sure no error ever ends in a stack trace on a
// user's terminal. The only place besides the CLI entry that ends the process.
// With `workers` > 1 the same shell runs the supervisor (workers/supervisor.ts) in the primary
// and an instance in each worker (workers/worker.ts); with 1, nothing of that exists.
import cluster from 'node:cluster';
import { formatProblem, SourceError } from './config/source.js';
import { KeygateFault } from './errors/fault.js';
import { exitCodeFor } from './errors/mapping.js';
import { startKeygate, type KeygateInstance, type StartOptions } from './instance.js';
import { createLogger, type Logger } from './observe/logger.js';
import { configuredWorkers } from './workers/count.js';
import { startSupervisor, type Supervisor } from './workers/supervisor.js';
import { joinCluster } from './workers/worker.js';

export async function serveMain(opts: StartOptions): Promise<void> {
  const env = opts.env ?? process.env;
  // KEYGATE_LOG_LEVEL (or `serve --log-level`) overrides keygate.yaml's log.level; without it
  // the instance logs at the configured level, and this one only speaks if starting fails.
  const override = env.KEYGATE_LOG_LEVEL;
  const bootLogger = opts.logger ?? createLogger(override ?? 'info');
  if (cluster.isPrimary) {
    const workers = configuredWorkers(opts.configFile, env);
    if (workers > 1) return superviseMain(opts, workers, bootLogger, override !== undefined);
  }
  const worker = cluster.isWorker ? joinCluster(env, () => process.exit(1), bootLogger) : undefined;
  let instance: KeygateInstance | undefined;
  // Node's default for SIGHUP is to end the process: take it over before starting, since a
  // reload asked for while starting is already satisfied by the files being read now.
  process.on('SIGHUP', () => void instance?.reload('SIGHUP'));
  try {
    instance = await startKeygate({ ...opts, ...worker?.startOptions, logger: opts.logger ?? (override ? bootLogger : undefined) });
  } catch (err) {
    // Every line on serve's stderr is JSON (a log collector parses each one): the problems go
    // in the one fatal line, as the `file:line:col: message` texts `keygate check` prints.
    const config = opts.configFile;
    if (err instanceof SourceError) {
      bootLogger.fatal({ config, code: err.code, problems: err.problems.map(formatProblem) }, 'configuration has errors; not starting');
    } else if (err instanceof KeygateFault) {
      bootLogger.fatal({ config, code: err.code, err: err.message }, 'cannot start');
    } else {
      const e = err as NodeJS.ErrnoException;
      bootLogger.fatal({ config, err: e.message, code: e.code }, e.code === 'EADDRINUSE' ? 'address already in use' : 'cannot start');
    }
    process.exit(err instanceof KeygateFault ? exitCodeFor(err) : 1);
  }
  const running: KeygateInstance = instance;
  const logger = running.logger;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (signal !== 'supervisor') worker?.draining();
    logger.info({ signal }, 'draining: readiness is now 503, finishing in-flight requests');
    running
      .drain()
      .then(() => worker?.close())
      .then(
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
  worker?.serving(running, { reload: (trigger) => void running.reload(trigger), drain: stop });
  exitOnFault(logger);
}

/** workers > 1, in the primary: the supervisor; the exit code is the drain's. */
async function superviseMain(opts: StartOptions, workers: number, bootLogger: Logger, overridden: boolean): Promise<void> {
  let supervisor: Supervisor;
  try {
    supervisor = startSupervisor({ configFile: opts.configFile, env: opts.env ?? process.env, workers, logger: opts.logger ?? (overridden ? bootLogger : undefined) });
  } catch (err) {
    bootLogger.fatal({ err: (err as Error).message }, 'cannot start');
    process.exit(1);
  }
  // Wired before the workers are up: a SIGTERM while they start drains them too.
  const running = supervisor;
  const stop = (signal: string) =>
    void running.stop(signal).then((code) => {
      running.logger.info({ code }, 'stopped');
      process.exit(code);
    });
  process.on('SIGHUP', () => running.reload('SIGHUP'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  exitOnFault(running.logger);
  await running.started.catch(() => process.exit(1));
}

function exitOnFault(logger: Logger): void {
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: err.message, stack: err.stack }, 'uncaught exception; exiting');
    process.exit(70);
  });
  process.on('unhandledRejection', (reason) => {
    const err = reason instanceof Error ? reason : new Error(String(reason));
    logger.fatal({ err: err.message, stack: err.stack }, 'unhandled promise rejection; exiting');
    process.exit(70);
  });
}

// Assembles the `keygate` command line. Each command group lives in commands/ and registers
// itself here; runCli never throws and returns the exit code (0 ok, 1 error, 2 usage).
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { formatProblem, SourceError } from '../config/source.js';
import { KeygateFault } from '../errors/fault.js';
import { exitCodeFor } from '../errors/mapping.js';
import { registerAccount } from './commands/account.js';
import { registerCert } from './commands/cert.js';
import { registerCerts } from './commands/certs.js';
import { registerCheck } from './commands/check.js';
import { registerDev } from './commands/dev.js';
import { registerExplain } from './commands/explain.js';
import { registerServe } from './commands/serve.js';
import { registerStore } from './commands/store.js';
import { registerToken } from './commands/token.js';
import { closeStores, processIo, type Io } from './support.js';

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

export type Register = (program: Command, io: Io, env: NodeJS.ProcessEnv) => void;

export function buildProgram(io: Io, env: NodeJS.ProcessEnv): Command {
  const program = new Command('keygate')
    .description('Authentication reverse proxy: API tokens and client certificates in front of any HTTP API')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();
  for (const register of [registerServe, registerDev, registerCheck, registerCerts, registerAccount, registerToken, registerCert, registerExplain, registerStore] satisfies Register[]) {
    register(program, io, env);
  }
  // Sub-commands inherit exitOverride and output from their parent only when set on them.
  const inherit = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err }).showHelpAfterError('(run with --help for usage)');
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

export async function runCli(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = buildProgram(io, env);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    return failed(err, io, env);
  } finally {
    await closeStores();
  }
}

/** One line on stderr (file problems one per line), never a stack trace unless KEYGATE_DEBUG is set. */
function failed(err: unknown, io: Io, env: NodeJS.ProcessEnv): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  if (err instanceof SourceError) {
    for (const p of err.problems) io.err(`${formatProblem(p)}\n`);
    return exitCodeFor(err);
  }
  if (err instanceof KeygateFault) {
    io.err(`keygate: ${err.message}\n`);
    return exitCodeFor(err);
  }
  const e = err as NodeJS.ErrnoException;
  io.err(`keygate: ${e?.code ? `${e.code}: ` : ''}${e?.message ?? String(err)}\n`);
  if (env.KEYGATE_DEBUG) io.err(`${e?.stack ?? ''}\n`);
  return exitCodeFor(err);
}

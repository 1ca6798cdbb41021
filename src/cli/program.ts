// Assembles the `keygate` command line. Each command group lives in commands/ and registers
// itself here; runCli never throws and returns the exit code. Two things every command shares
// happen here and nowhere else: which keygate.yaml it uses (config/locate.ts, before its action
// runs), and how a failure ends — one line on stderr (a JSON log line for serve) naming that
// file, and the exit code of the error's KG_ERR code (errors/catalog.ts, docs/cli.md).
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { locateConfig } from '../config/locate.js';
import { formatProblem, SourceError } from '../config/source.js';
import { EXIT } from '../errors/catalog.js';
import { KeygateFault } from '../errors/fault.js';
import { exitCodeFor } from '../errors/mapping.js';
import { createLogger } from '../observe/logger.js';
import { examples, JSON_LOG_COMMANDS, processIo, type Io, type Session, withStoresClosed } from './support.js';

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

export type Register = (program: Command, io: Io, env: NodeJS.ProcessEnv) => void;

/**
 * Each top-level command and where it lives, in the order --help lists them. A command line
 * that names one loads that module alone: most of a CLI command's time was loading the
 * modules of every other command (the proxy, HTTP/2, the PKI), about 0.2 s of each run.
 */
const COMMANDS: ReadonlyArray<[string, () => Promise<Register>]> = [
  ['serve', async () => (await import('./commands/serve.js')).registerServe],
  ['dev', async () => (await import('./commands/dev.js')).registerDev],
  ['check', async () => (await import('./commands/check.js')).registerCheck],
  ['certs', async () => (await import('./commands/certs.js')).registerCerts],
  ['account', async () => (await import('./commands/account.js')).registerAccount],
  ['token', async () => (await import('./commands/token.js')).registerToken],
  ['cert', async () => (await import('./commands/cert.js')).registerCert],
  ['explain', async () => (await import('./commands/explain.js')).registerExplain],
  ['store', async () => (await import('./commands/store.js')).registerStore],
];

/** The command `argv` names (its first word that is not an option), when it is one of ours. */
function namedCommand(argv: readonly string[]): string | undefined {
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  return COMMANDS.some(([name]) => name === first) ? first : undefined;
}

/** `argv` decides which commands are registered: the one it names, or all (help, a typo). */
export async function buildProgram(io: Io, env: NodeJS.ProcessEnv, session: Session = {}, argv: readonly string[] = []): Promise<Command> {
  const program = new Command('keygate')
    .description('Authentication reverse proxy: API tokens and client certificates in front of any HTTP API')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();
  examples(
    program,
    'keygate serve -c /etc/keygate/keygate.yaml',
    'keygate account create --name ci-deployer --role operator',
    'keygate token create --account ci-deployer',
    'keygate token list --expiring 14d --format csv',
    'keygate explain --token tok_5De9uufOrDC5qC GET /api/v1/certificates',
  );
  program.addHelpText('after', '\nExit codes: 0 ok, 1 invalid input, 2 usage, 3 not found, 4 conflict, 5 store unavailable (docs/cli.md).\n');
  const only = namedCommand(argv);
  const versionOnly = only === undefined && argv.slice(2).some((a) => a === '-V' || a === '--version');
  if (!versionOnly) for (const [name, load] of COMMANDS) if (only === undefined || name === only) (await load())(program, io, env);
  // Sub-commands inherit exitOverride and output from their parent only when set on them.
  const inherit = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err }).showHelpAfterError('(run with --help for usage)');
      inherit(sub);
    }
  };
  inherit(program);
  // Before any action: the config file the command uses, absolute, into its --config option.
  program.hook('preAction', (_program, action) => {
    session.jsonLog = JSON_LOG_COMMANDS.has(action);
    if (!action.options.some((o) => o.long === '--config')) return;
    const located = locateConfig({ flag: action.getOptionValue('config') as string | undefined, env, cwd: process.cwd() });
    session.config = located;
    action.setOptionValue('config', located.file);
  });
  return program;
}

export function runCli(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const session: Session = {};
  return withStoresClosed(io, async () => {
    try {
      const program = await buildProgram(io, env, session, argv);
      await program.parseAsync(argv);
      return EXIT.ok;
    } catch (err) {
      return failed(err, io, env, session);
    }
  });
}

/**
 * One line on stderr (file problems one per line, then a count), never a stack trace unless
 * KEYGATE_DEBUG is set. Once a config file was chosen, the line names it: a failure that is not
 * about the command line may well be about the file.
 */
function failed(err: unknown, io: Io, env: NodeJS.ProcessEnv, session: Session): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  const code = exitCodeFor(err);
  const e = err as NodeJS.ErrnoException;
  const message = err instanceof SourceError ? `${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} found` : err instanceof KeygateFault ? err.message : `${e?.code ? `${e.code}: ` : ''}${e?.message ?? String(err)}`;
  if (session.jsonLog) {
    const problems = err instanceof SourceError ? { problems: err.problems.map(formatProblem) } : {};
    createLogger('info').fatal({ config: session.config?.file, code: err instanceof KeygateFault ? err.code : e?.code, ...problems }, `not starting: ${message}`);
    return code;
  }
  if (err instanceof SourceError) for (const p of err.problems) io.err(`${formatProblem(p)}\n`);
  const where = session.config && code !== EXIT.usage ? `config ${session.config.file}: ` : '';
  io.err(`keygate: ${where}${message}\n`);
  if (env.KEYGATE_DEBUG && !(err instanceof KeygateFault)) io.err(`${e?.stack ?? ''}\n`);
  return code;
}

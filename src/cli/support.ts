// What every management command shares: loading config, opening the store, writing audit
// events, formatting output, and errors that end as one line on stderr.
import { appendFileSync, existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { CHECKOUT_CONFIG, CONFIG_ENV, IMAGE_CONFIG, type LocatedConfig } from '../config/locate.js';
import type { KeygateConfig } from '../config/schema.js';
import { SourceError } from '../config/source.js';
import type { ManagementAudit } from '../observe/audit.js';
import type { ErrorCode } from '../errors/catalog.js';
import { KeygateFault } from '../errors/fault.js';
import { createStore } from '../store/factory.js';
import { OperationError, type OpContext } from '../store/operations.js';
import type { CredentialStore, StoreData } from '../store/types.js';

/**
 * An error meant for the user, printed as `keygate: <message>`. Its code decides the exit code
 * (the `exit` of the code in errors/catalog.ts, read by errors/mapping.ts): KG_ERR_USAGE for a
 * command line that is wrong, KG_ERR_NOT_FOUND for something named that does not exist, …
 */
export class CliError extends KeygateFault {
  constructor(message: string, code: ErrorCode = 'KG_ERR_BAD_REQUEST') {
    super(code, message);
  }
}

/** Where a command writes, and reads when told to read standard input (`-`). */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Standard input; the process's when not given. */
  in?: NodeJS.ReadableStream;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/**
 * What runCli knows about the command it runs, for the one line a failure prints: the config
 * file it used (set before the action runs, config/locate.ts) and whether the command's stderr
 * is a JSON log (serve).
 */
export interface Session {
  config?: LocatedConfig;
  jsonLog?: boolean;
}

/** Commands whose stderr is a JSON log: their failures are log lines too. */
export const JSON_LOG_COMMANDS = new WeakSet<Command>();

/**
 * -c FILE, without a default: runCli's preAction hook puts the file config/locate.ts picks into
 * `opts.config` (absolute), so an action always finds it there.
 */
export function withConfigOption(cmd: Command): Command {
  return cmd.option('-c, --config <file>', `keygate.yaml to use (default: $${CONFIG_ENV}, else ./${CHECKOUT_CONFIG}, else ${IMAGE_CONFIG})`);
}

/** --verbose on a command that changes something: its audit line is printed too. */
export function withVerboseOption(cmd: Command): Command {
  return cmd.option('--verbose', 'also print the audit line of the change (JSON) on stderr');
}

/** Examples at the end of a command's --help. */
export function examples(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

export interface Management {
  loaded: LoadedConfig;
  config: KeygateConfig;
  store: CredentialStore;
  actor: string;
  audit: (entry: { event: string; target?: string; [field: string]: unknown }) => void;
  op: () => OpContext;
}

export function actorName(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli:unknown';
  }
}

/**
 * Stores opened by a command, by the Io it was run with; runCli closes them when it ends (a
 * Redis connection left open would keep the process alive). By run, not by process: a program
 * that runs several commands at once (the tests do) must not close another's store. (Not an
 * AsyncLocalStorage: on Node 20 that enables an async hook for the process's life, and `serve`
 * is a command too — every tick of the proxy would pay for it.)
 */
const opened = new WeakMap<Io, Set<CredentialStore>>();

/** Runs one command with `io`; the stores it opens are closed when it ends, whatever happened. */
export async function withStoresClosed<T>(io: Io, run: () => Promise<T>): Promise<T> {
  const mine = new Set<CredentialStore>();
  opened.set(io, mine);
  try {
    return await run();
  } finally {
    opened.delete(io);
    await Promise.all([...mine].map((s) => s.close().catch(() => undefined)));
  }
}

/** The store a config names, closed by runCli when the command run with `io` ends (outside one, by the caller). */
export function openStore(config: Pick<KeygateConfig, 'store'>, io: Io, actor = actorName()): CredentialStore {
  const store = createStore(config, { actor });
  opened.get(io)?.add(store);
  return store;
}

export function loadOrThrow(configFile: string, env: NodeJS.ProcessEnv): LoadedConfig {
  const { loaded, problems } = loadConfig(configFile, env);
  if (!loaded) throw new SourceError(problems);
  return loaded;
}

export function openManagement(opts: { config: string; verbose?: boolean }, io: Io, env: NodeJS.ProcessEnv = process.env): Management {
  const loaded = loadOrThrow(opts.config, env);
  const config = loaded.config;
  const actor = actorName();
  const store = openStore(config, io, actor);
  return {
    loaded,
    config,
    store,
    actor,
    audit: (entry) => writeCliAudit(config.audit.output, { ...entry, actor }, io, opts.verbose === true),
    op: () => ({ config, now: new Date() }),
  };
}

/**
 * A command that only reads needs a store that exists: the file store takes a missing file for
 * an empty inventory (the first change creates it), which would make a wrong path look like
 * "nothing here" with exit 0.
 */
export function requireStore(config: Pick<KeygateConfig, 'store'>): void {
  if (config.store.redis) return;
  if (!existsSync(config.store.file)) throw new CliError(`no credential store at ${config.store.file}: create one with keygate account create`, 'KG_ERR_STORE_UNAVAILABLE');
}

/** The inventory of a store that must exist (requireStore). */
export async function readInventory(m: Management): Promise<StoreData> {
  requireStore(m.config);
  return m.store.read();
}

/**
 * A change's audit line goes to the audit sink and not to the terminal. audit.output a file:
 * appended there. audit.output stdout or stderr: that is the running proxy's stream, which a
 * CLI process does not have, so the line is not written (docs/cli.md says so; use a file to
 * keep management events). --verbose prints it on stderr as well, whatever the sink.
 */
export function writeCliAudit(output: string, entry: ManagementAudit, io: Io, verbose = false): void {
  const line = JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n';
  if (verbose) io.err(line);
  if (output === 'stdout' || output === 'stderr') return;
  try {
    appendFileSync(output, line, { mode: 0o600 });
  } catch (err) {
    io.err(`keygate: warning: could not write the audit log ${output}: ${(err as Error).message}\n`);
  }
}

/** Parses a flag value with a store-layer parser: its refusal is a usage error (exit 2). */
export function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof OperationError) throw new CliError(err.message, 'KG_ERR_USAGE');
    throw err;
  }
}

/** Runs a store operation; its refusals end the command with their own exit code. */
export async function mutate<T>(m: Management, fn: (data: StoreData) => T): Promise<T> {
  return m.store.update(fn, { actor: m.actor });
}

// ---- output --------------------------------------------------------------------------------

export type Format = 'table' | 'json' | 'csv';
export const ALL_FORMATS: readonly Format[] = ['table', 'json', 'csv'];

/**
 * --format on a command that prints data (and --json, the same as --format json, where the
 * command had it before --format: scripts and docs use it). Without either: table.
 */
export function withFormatOption(cmd: Command, formats: readonly Format[] = ALL_FORMATS, json = false): Command {
  cmd.option('--format <format>', `output: ${formats.join(', ')} (default: table)`);
  if (json) cmd.option('--json', 'the same as --format json');
  return cmd;
}

export function formatOf(opts: { format?: string; json?: boolean }, formats: readonly Format[] = ALL_FORMATS): Format {
  const v = opts.format;
  if (opts.json && v !== undefined && v !== 'json') throw new CliError(`--json and --format ${v} contradict each other`, 'KG_ERR_USAGE');
  if (opts.json) return 'json';
  if (v === undefined) return 'table';
  if ((formats as readonly string[]).includes(v)) return v as Format;
  throw new CliError(`unknown format "${v}": use ${formats.slice(0, -1).join(', ')}${formats.length > 1 ? ' or ' : ''}${formats.at(-1)!}`, 'KG_ERR_USAGE');
}

/** A cell as text: null is empty, a list is its items, a record in a list is its id. */
const cellText = (v: unknown, sep: string, none: string): string => {
  if (v === null || v === undefined || v === '') return none;
  if (Array.isArray(v)) return v.map((x) => (x !== null && typeof x === 'object' && 'id' in x ? String((x as { id: unknown }).id) : String(x))).join(sep) || none;
  return String(v);
};

export function renderTable(rows: ReadonlyArray<object>, columns: readonly string[]): string {
  if (rows.length === 0) return '(none)\n';
  const cell = (v: unknown) => cellText(v, ',', '-');
  const at = (r: object, c: string): unknown => (r as Record<string, unknown>)[c];
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(at(r, c)).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(at(r, c)))))].join('\n') + '\n';
}

/** RFC 4180 CSV; cells that a spreadsheet would run as a formula are prefixed with '. */
export function renderCsv(rows: ReadonlyArray<object>, columns: readonly string[]): string {
  const cell = (v: unknown) => {
    let s = cellText(v, ' ', '');
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.join(','), ...rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])).join(','))].join('\r\n') + '\r\n';
}

export function render(format: Format, rows: ReadonlyArray<object>, columns: readonly string[]): string {
  if (format === 'json') return JSON.stringify(rows, null, 2) + '\n';
  if (format === 'csv') return renderCsv(rows, columns);
  return renderTable(rows, columns);
}

/** One record: aligned `key  value` lines (table), a JSON object, or a CSV header and one row. */
export function renderRecord(format: Format, record: object): string {
  if (format === 'json') return JSON.stringify(record, null, 2) + '\n';
  if (format === 'csv') return renderCsv([record], Object.keys(record));
  return renderFields(record);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** One record as aligned `key  value` lines (the text form of a `show` command). */
export function renderFields(record: object): string {
  const entries = Object.entries(record);
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v, ', ', '-')}`).join('\n') + '\n';
}

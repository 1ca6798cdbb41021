// What every management command shares: loading config, opening the store, writing audit
// events, formatting output, and errors that end as one line on stderr.
import { appendFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH, loadConfig, type LoadedConfig } from '../config/load.js';
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
 * (errors/mapping.ts): KG_ERR_USAGE for a command line that is wrong, else what went wrong.
 */
export class CliError extends KeygateFault {
  constructor(message: string, code: ErrorCode = 'KG_ERR_BAD_REQUEST') {
    super(code, message);
  }
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

export function withConfigOption(cmd: Command): Command {
  return cmd.option('-c, --config <file>', 'keygate.yaml to use', DEFAULT_CONFIG_PATH);
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
 * Stores opened by this command; runCli closes them when the command ends (a Redis connection
 * left open would keep the process alive).
 */
const opened = new Set<CredentialStore>();

/** The store a config names, closed by runCli when the command ends. */
export function openStore(config: Pick<KeygateConfig, 'store'>, actor = actorName()): CredentialStore {
  const store = createStore(config, { actor });
  opened.add(store);
  return store;
}

export async function closeStores(): Promise<void> {
  const all = [...opened];
  opened.clear();
  await Promise.all(all.map((s) => s.close().catch(() => undefined)));
}

export function openManagement(configFile: string, io: Io, env: NodeJS.ProcessEnv = process.env): Management {
  const { loaded, problems } = loadConfig(configFile, env);
  if (!loaded) throw new SourceError(problems);
  const config = loaded.config;
  const actor = actorName();
  const store = openStore(config, actor);
  return {
    loaded,
    config,
    store,
    actor,
    audit: (entry) => writeCliAudit(config.audit.output, { ...entry, actor }, io),
    op: () => ({ config, now: new Date() }),
  };
}

/**
 * Management events from the CLI go to the audit file when audit.output is a file. When it is
 * stdout (the proxy's log stream) they go to the CLI's stderr instead, so that stdout keeps
 * only the command's own output (a token secret must stand alone there).
 */
export function writeCliAudit(output: string, entry: ManagementAudit, io: Io): void {
  const line = JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n';
  if (output === 'stdout' || output === 'stderr') {
    io.err(line);
    return;
  }
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

export function parseFormat(v: string): Format {
  if (v === 'table' || v === 'json' || v === 'csv') return v;
  throw new CliError(`unknown format "${v}": use table, json or csv`, 'KG_ERR_USAGE');
}

export function renderTable(rows: ReadonlyArray<object>, columns: readonly string[]): string {
  if (rows.length === 0) return '(none)\n';
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : Array.isArray(v) ? v.join(',') || '-' : String(v));
  const at = (r: object, c: string): unknown => (r as Record<string, unknown>)[c];
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(at(r, c)).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(at(r, c)))))].join('\n') + '\n';
}

/** RFC 4180 CSV; cells that a spreadsheet would run as a formula are prefixed with '. */
export function renderCsv(rows: ReadonlyArray<object>, columns: readonly string[]): string {
  const cell = (v: unknown) => {
    let s = v === null || v === undefined ? '' : Array.isArray(v) ? v.join(' ') : String(v);
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

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** One record as aligned `key  value` lines (the text form of a `show` command). */
export function renderFields(record: object): string {
  const entries = Object.entries(record);
  const width = Math.max(...entries.map(([k]) => k.length));
  const text = (v: unknown) => (v === null || v === undefined || v === '' ? '-' : Array.isArray(v) ? v.join(', ') || '-' : String(v));
  return entries.map(([k, v]) => `${k.padEnd(width)}  ${text(v)}`).join('\n') + '\n';
}

// Moving a whole inventory between stores (backup, file → Redis migration): an export document
// with a format version, and an idempotent import into any CredentialStore.
//
// Import rule. A record of the export that the target lacks is added; one the target holds
// identically is left alone (so importing the same export twice changes nothing the second
// time). A conflict is a record under the same key with other content, an account name that
// differs only in case, or a token whose hash the target holds under another id. With the
// default rule (`fail`) one conflict refuses the whole import and nothing is written, so a
// migration either lands whole or not at all; `keep` keeps the target's records and imports the
// rest; `replace` lets the export's records win. The import is one store.update: atomic.
import { isDeepStrictEqual } from 'node:util';
import { stringify } from 'yaml';
import { z } from 'zod';
import { parseYamlText, type Problem } from '../config/source.js';
import { validateSource } from '../config/validate.js';
import { storeSchema } from './schema.js';
import type { CredentialStore, StoreData } from './types.js';

export const EXPORT_KIND = 'keygate-inventory';
export const EXPORT_FORMAT_VERSION = 1;

const exportSchema = z.strictObject({
  kind: z.literal(EXPORT_KIND, `not a keygate inventory export (kind must be "${EXPORT_KIND}")`),
  formatVersion: z.literal(EXPORT_FORMAT_VERSION, `unsupported export formatVersion (this keygate reads ${EXPORT_FORMAT_VERSION})`),
  exportedAt: z.string().default(''),
  source: z.string().default(''),
  inventory: storeSchema,
});

export type InventoryExport = z.output<typeof exportSchema>;

export type ConflictRule = 'fail' | 'keep' | 'replace';
export const CONFLICT_RULES: readonly ConflictRule[] = ['fail', 'keep', 'replace'];

export interface ImportConflict {
  kind: 'account' | 'token' | 'certificate';
  key: string;
  reason: string;
}

export interface ImportReport {
  added: { accounts: number; tokens: number; certificates: number };
  unchanged: number;
  replaced: number;
  /** Kept as the target had them (rule keep), or the reason nothing was written (rule fail). */
  conflicts: ImportConflict[];
  /** False when nothing was written (conflicts under rule fail). */
  applied: boolean;
}

/** The export document (YAML; JSON is valid YAML, so hand-made JSON imports too). Holds no secret. */
export function serializeExport(data: StoreData, source: string, now: Date): string {
  const doc = { kind: EXPORT_KIND, formatVersion: EXPORT_FORMAT_VERSION, exportedAt: now.toISOString(), source, inventory: data };
  return `# keygate inventory export: accounts, token hashes and certificate bindings. No secret.\n${stringify(doc, { lineWidth: 0 })}`;
}

export async function exportInventory(store: CredentialStore, now = new Date()): Promise<{ text: string; data: StoreData }> {
  const data = await store.read();
  return { text: serializeExport(data, store.description, now), data };
}

/** Parses and validates an export, with every problem at its file:line:col. */
export function parseExport(file: string, text: string): { doc?: InventoryExport; problems: Problem[] } {
  const source = parseYamlText(file, text);
  const { value, problems } = validateSource(source, exportSchema);
  if (!value || problems.length > 0) return { problems };
  const refs = danglingReferences(value.inventory);
  return refs.length ? { problems: refs.map((m) => ({ file, line: 1, col: 1, message: m })) } : { doc: value, problems: [] };
}

function danglingReferences(data: StoreData): string[] {
  const names = new Set(data.accounts.map((a) => a.name));
  const out: string[] = [];
  for (const t of data.tokens) if (!names.has(t.account)) out.push(`token ${t.id}: account "${t.account}" is not in the export`);
  for (const c of data.certificates) if (!names.has(c.account)) out.push(`certificate binding ${c.id}: account "${c.account}" is not in the export`);
  return out;
}

class ImportRefused extends Error {
  constructor(readonly report: ImportReport) {
    super('import refused: conflicts');
  }
}

/** Merges `incoming` into `target` (in place) under `rule`; pure apart from that. */
export function mergeInventory(target: StoreData, incoming: StoreData, rule: ConflictRule): ImportReport {
  const report: ImportReport = { added: { accounts: 0, tokens: 0, certificates: 0 }, unchanged: 0, replaced: 0, conflicts: [], applied: true };
  const byLowerName = new Map(target.accounts.map((a, i) => [a.name.toLowerCase(), i]));
  for (const a of incoming.accounts) {
    const i = byLowerName.get(a.name.toLowerCase());
    if (i === undefined) {
      target.accounts.push(structuredClone(a));
      byLowerName.set(a.name.toLowerCase(), target.accounts.length - 1);
      report.added.accounts++;
      continue;
    }
    const existing = target.accounts[i]!;
    if (isDeepStrictEqual(existing, a)) report.unchanged++;
    else if (existing.name !== a.name) report.conflicts.push({ kind: 'account', key: a.name, reason: `the target has an account "${existing.name}" (names differ only in case)` });
    else resolve(report, rule, { kind: 'account', key: a.name, reason: 'the target holds a different record under this name' }, () => (target.accounts[i] = structuredClone(a)));
  }
  mergeCredentials(report, rule, 'token', target.tokens, incoming.tokens);
  mergeCredentials(report, rule, 'certificate', target.certificates, incoming.certificates);
  if (report.conflicts.length > 0 && rule === 'fail') report.applied = false;
  return report;
}

function mergeCredentials<R extends { id: string; hash?: string }>(report: ImportReport, rule: ConflictRule, kind: 'token' | 'certificate', target: R[], incoming: readonly R[]): void {
  const byId = new Map(target.map((r, i) => [r.id, i]));
  const byHash = new Map(target.filter((r) => r.hash !== undefined).map((r) => [r.hash!, r.id]));
  const counter = kind === 'token' ? 'tokens' : 'certificates';
  for (const r of incoming) {
    const i = byId.get(r.id);
    const sameHash = r.hash !== undefined ? byHash.get(r.hash) : undefined;
    if (i === undefined && sameHash !== undefined) {
      // Two ids for one secret would make the token's identity ambiguous: never both.
      resolve(report, rule, { kind, key: r.id, reason: `the target holds the same token hash as ${sameHash}` }, () => {
        const j = byId.get(sameHash)!;
        target[j] = structuredClone(r);
        byId.delete(sameHash);
        byId.set(r.id, j);
      });
      continue;
    }
    if (i === undefined) {
      target.push(structuredClone(r));
      byId.set(r.id, target.length - 1);
      if (r.hash !== undefined) byHash.set(r.hash, r.id);
      report.added[counter]++;
      continue;
    }
    if (isDeepStrictEqual(target[i], r)) report.unchanged++;
    else resolve(report, rule, { kind, key: r.id, reason: `the target holds a different record under this id` }, () => (target[i] = structuredClone(r)));
  }
}

function resolve(report: ImportReport, rule: ConflictRule, conflict: ImportConflict, replace: () => void): void {
  if (rule === 'replace') {
    replace();
    report.replaced++;
  } else report.conflicts.push(conflict);
}

/** Imports into `store` in one atomic update. Under rule fail with conflicts, writes nothing. */
export async function importInventory(store: CredentialStore, incoming: StoreData, opts: { rule?: ConflictRule; actor?: string } = {}): Promise<ImportReport> {
  const rule = opts.rule ?? 'fail';
  try {
    return await store.update(
      (data) => {
        const report = mergeInventory(data, incoming, rule);
        if (!report.applied) throw new ImportRefused(report);
        const dangling = danglingReferences(data);
        if (dangling.length) throw new Error(`import refused: ${dangling.join('; ')}`);
        return report;
      },
      opts.actor !== undefined ? { actor: opts.actor } : undefined,
    );
  } catch (err) {
    if (err instanceof ImportRefused) return err.report;
    throw err;
  }
}

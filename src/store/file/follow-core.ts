// What a running proxy's reader of the credential file does on each change, in a worker thread
// (follow-worker.ts) so that none of it runs on the event loop that answers requests: read the
// file, compare its record lines with the last version's, parse and validate only the lines
// that differ, and hand back the records that changed. A revocation in 100,000 credentials is
// one line parsed here and one change applied by the proxy (runtime/inventory.ts).
import { readFile } from 'node:fs/promises';
import type { Problem, ValuePath } from '../../config/source.js';
import type { StoreChange, StoreData } from '../types.js';
import { keyOf, LISTS, parseStoreFile, recordLine, type KnownLines, type LineEntry, type ListName, type Positioner } from './layout.js';

export type FollowOutcome = { kind: 'snapshot'; data: StoreData } | { kind: 'changes'; changes: StoreChange[] } | { kind: 'rejected'; problems: Problem[] };

/** A data problem of a record named by its key (indexes differ between the file and the proxy's copy). */
export interface KeyedProblem {
  list?: ListName;
  key?: string;
  /** The path inside the record, or the whole path when no record is named. */
  path: ValuePath;
  message: string;
}

const KIND = { accounts: 'account', tokens: 'token', certificates: 'certificate' } as const;
const DUPLICATE = { accounts: 'account name', tokens: 'credential id', certificates: 'credential id' } as const;

export class FollowCore {
  /** The record lines of the last version delivered (records dropped), and where its values are. */
  private last: { entries: Record<ListName, LineEntry[]>; at: Positioner } | undefined;
  private delivered = false;
  /** Record lines parsed by the last read (every line for a file the YAML parser read whole). */
  lastParsed = 0;

  constructor(readonly file: string) {}

  async read(): Promise<FollowOutcome> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.absent('gone');
      return { kind: 'rejected', problems: [{ file: this.file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }] };
    }
    const parsed = parseStoreFile(this.file, bytes, this.known());
    if (parsed.empty) return this.absent('empty');
    if (parsed.problems.length) return { kind: 'rejected', problems: parsed.problems };
    const entries = parsed.entries ?? linesOf(parsed.data!);
    this.lastParsed = parsed.parsed ?? LISTS.reduce((n, l) => n + entries[l].length, 0);
    // A version with two records of one key cannot be told as changes: refused, where the second is.
    for (const list of LISTS) {
      const seen = new Set<string>();
      for (const [i, e] of entries[list].entries()) {
        if (seen.has(e.key)) return { kind: 'rejected', problems: [parsed.at.problemAt([list, i, list === 'accounts' ? 'name' : 'id'], `duplicate ${DUPLICATE[list]} "${e.key}"`)] };
        seen.add(e.key);
      }
    }
    const before = this.last?.entries;
    const outcome: FollowOutcome = before && this.delivered ? { kind: 'changes', changes: changesBetween(before, entries) } : { kind: 'snapshot', data: parsed.data! };
    for (const list of LISTS) for (const e of entries[list]) delete e.record;
    this.last = { entries, at: parsed.at };
    this.delivered = true;
    return outcome;
  }

  /** Positions problems in the last version delivered. */
  locate(problems: readonly KeyedProblem[]): Problem[] {
    return problems.map((p) => {
      const last = this.last;
      if (!last) return { file: this.file, line: 1, col: 1, message: p.message };
      if (p.list === undefined || p.key === undefined) return last.at.problemAt(p.path, p.message);
      const i = last.entries[p.list].findIndex((e) => e.key === p.key);
      return last.at.problemAt(i < 0 ? [p.list] : [p.list, i, ...p.path], p.message);
    });
  }

  private known(): KnownLines | undefined {
    const entries = this.last?.entries;
    if (!entries) return undefined;
    const map = (l: ListName) => new Map(entries[l].map((e) => [e.body, e.key]));
    return { accounts: map('accounts'), tokens: map('tokens'), certificates: map('certificates') };
  }

  /**
   * Once the file had content, its disappearance is an accident, never "no credentials":
   * emptying the store on purpose goes through the CLI or the admin API, which write a
   * complete (empty) document.
   */
  private absent(why: 'gone' | 'empty'): FollowOutcome {
    const before = this.last?.entries;
    if (before && LISTS.some((l) => before[l].length > 0)) {
      return { kind: 'rejected', problems: [{ file: this.file, line: 1, col: 1, message: `the credential file is ${why}; keeping the last version. Restore it; to remove every credential, delete them with keygate account delete or import an empty store (keygate store import)` }] };
    }
    const first = !this.delivered;
    this.last = { entries: { accounts: [], tokens: [], certificates: [] }, at: { problemAt: (_p, message) => ({ file: this.file, line: 1, col: 1, message }) } };
    this.delivered = true;
    return first ? { kind: 'snapshot', data: { version: 1, accounts: [], tokens: [], certificates: [] } } : { kind: 'changes', changes: [] };
  }
}

/** The lines keygate would write for data the YAML parser read (to compare with the next version). */
function linesOf(data: StoreData): Record<ListName, LineEntry[]> {
  const of = (list: ListName): LineEntry[] => (data[list] as object[]).map((record) => ({ key: keyOf(list, record), line: 0, body: recordLine(list, record), record, canonical: true, col: 1 }));
  return { accounts: of('accounts'), tokens: of('tokens'), certificates: of('certificates') };
}

/**
 * Puts for the lines the last version did not have, deletes for the keys it had that are gone.
 * Accounts come first among puts and last among deletes (as store/diff.ts orders them), so
 * that no credential ever names an account that does not exist.
 */
function changesBetween(before: Record<ListName, LineEntry[]>, after: Record<ListName, LineEntry[]>): StoreChange[] {
  const puts: StoreChange[] = [];
  const deletes: StoreChange[] = [];
  for (const list of LISTS) {
    const old = new Map(before[list].map((e) => [e.key, e.body]));
    const keys = new Set<string>();
    for (const e of after[list]) {
      keys.add(e.key);
      if (old.get(e.key) !== e.body) puts.push({ op: 'put', kind: KIND[list], record: e.record } as StoreChange);
    }
    for (const key of old.keys()) if (!keys.has(key)) deletes.push({ op: 'delete', kind: KIND[list], key });
  }
  const accountsLast = (c: StoreChange) => (c.kind === 'account' ? 1 : 0);
  return [...puts, ...deletes.sort((a, b) => accountsLast(a) - accountsLast(b))];
}

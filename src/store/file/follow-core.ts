// What a running proxy's reader of the credential file does on each change, in a worker thread
// (follow-worker.ts) so that none of it runs on the event loop that answers requests: read the
// file, compare its record lines with the last version's, parse and validate only the lines
// that differ, and hand back the records that changed. A revocation in 100,000 credentials is
// one line parsed here and one change applied by the proxy (runtime/inventory.ts).
//
// It also writes the changes the proxy's admin API makes (write()): the proxy ran the mutation
// on its own copy and sends only the changed records; their lines are put in place of the old
// ones here, so that the event loop never reads, parses or serializes the whole file.
//
// One module because reading and writing share the reader's line state (fingerprints,
// positions, digest): a write must leave exactly the state a read of what it wrote would.
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Problem, ValuePath } from '../../config/source.js';
import type { StoreChange, StoreData } from '../types.js';
import { writeFileAtomic } from './atomic-file.js';
import { ITEM_COL, keyOf, lineFingerprint, linePositioner, linesLayout, LISTS, parseStoreFile, recordLine, serializeParts, type KnownLine, type LineEntry, type LinePart, type ListName, type Positioner } from './layout.js';

/**
 * `version` names the version this reader holds (its lines), so that a write can tell it is
 * still the one the proxy's copy came from; `writable`: its lines are all as keygate writes
 * them, so that a file of the same records can be written from them (else the whole file is
 * rewritten the long way, which also puts a hand edit back in keygate's layout).
 */
export type FollowOutcome = { kind: 'snapshot'; data: StoreData; version: string; writable: boolean } | { kind: 'changes'; changes: StoreChange[]; version: string; writable: boolean } | { kind: 'rejected'; problems: Problem[] };

/** What a write did: written (the new version), stale (the file or this reader moved on: nothing written), or failed (a file-system error, nothing written). */
export type WriteOutcome = { kind: 'written'; version: string } | { kind: 'stale' } | { kind: 'failed'; error: FsErrorFields } | { kind: 'rejected'; problems: Problem[] };

/** The fields of a file-system error that survive the trip from the worker (an Error's own properties do not). */
export interface FsErrorFields {
  message: string;
  code?: string;
  syscall?: string;
  path?: string;
  errno?: number;
}

const LIST_OF = { account: 'accounts', token: 'tokens', certificate: 'certificates' } as const;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

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
  /** The record lines of the last version delivered, in file order, and where its values are. */
  private last: { entries: Record<ListName, LineEntry[]>; at: Positioner } | undefined;
  /**
   * The lines of the last version delivered, by fingerprint (layout.ts lineFingerprint) and by
   * key. Kept from read to read and changed only where the file changed: a read costs one
   * digest and one lookup per line, and work in proportion to the lines that differ. Neither
   * the file's text nor its lines are kept (at 100,000 records they were 33 MB of text and
   * ~35 MB of heap in this thread): a write takes the unchanged lines from the file itself,
   * which it checks is still this version.
   */
  private byBody: Record<ListName, Map<string, KnownLine>> = { accounts: new Map(), tokens: new Map(), certificates: new Map() };
  private byKey: Record<ListName, Map<string, KnownLine>> = { accounts: new Map(), tokens: new Map(), certificates: new Map() };
  private epoch = 0;
  private delivered = false;
  /** SHA-256 of the bytes of the last version delivered; undefined while there is none (no file). */
  private digest: string | undefined;
  private readonly nonce = randomBytes(6).toString('hex');
  private versions = 0;
  private writable = false;
  /** Record lines parsed by the last read (every line for a file the YAML parser read whole). */
  lastParsed = 0;
  /** Bytes of the file the last read or write handled (follow-worker.ts collects garbage after a large one). */
  lastSize = 0;

  constructor(readonly file: string) {}

  async read(): Promise<FollowOutcome> {
    let bytes: Buffer;
    try {
      bytes = await this.readBytes();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.absent('gone');
      return { kind: 'rejected', problems: [{ file: this.file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }] };
    }
    // The same bytes as the version delivered (the watcher's echo of a write, a touch): nothing changed.
    const digest = sha256(bytes);
    if (this.delivered && this.digest !== undefined && digest === this.digest) {
      this.lastParsed = 0;
      return { kind: 'changes', changes: [], version: this.version, writable: this.writable };
    }
    return this.take(bytes, digest);
  }

  /** The file's bytes (in a buffer of bufferFor(), see there). */
  private async readBytes(): Promise<Buffer> {
    const fh = await open(this.file, 'r');
    try {
      let buffer = bufferFor((await fh.stat()).size + 1);
      let n = 0;
      for (;;) {
        if (n === buffer.length) {
          const larger = bufferFor(n * 2);
          buffer.copy(larger);
          buffer = larger;
        }
        const { bytesRead } = await fh.read(buffer, n, buffer.length - n, n);
        if (bytesRead === 0) {
          this.lastSize = n;
          return buffer.subarray(0, n);
        }
        n += bytesRead;
      }
    } finally {
      await fh.close();
    }
  }

  private get version(): string {
    return `${this.nonce}:${this.versions}`;
  }

  /** Reads these bytes (whose SHA-256 is `digest`) as the next version. */
  private take(bytes: Buffer, digest: string): FollowOutcome {
    let epoch = ++this.epoch;
    const parsed = parseStoreFile(this.file, bytes, this.delivered ? { lines: this.byBody, epoch } : undefined);
    if (parsed.empty) return this.absent('empty');
    if (parsed.problems.length) return { kind: 'rejected', problems: parsed.problems };
    let entries = parsed.entries;
    if (!entries) {
      // Read by the YAML parser whole: its records as keygate would write them, compared by text.
      entries = linesOf(parsed.data!);
      epoch = ++this.epoch; // the line reader may have stamped lines before it gave up
      for (const list of LISTS) {
        for (const e of entries[list]) {
          e.fp = lineFingerprint(e.body);
          const hit = this.byBody[list].get(e.fp);
          if (!hit) continue;
          if (hit.seen === epoch) return this.duplicate(parsed.at, list, entries[list].indexOf(e), e.key);
          hit.seen = epoch;
          e.record = undefined;
        }
      }
    }
    this.lastParsed = parsed.parsed ?? LISTS.reduce((n, l) => n + entries[l].length, 0);
    const [repeat] = parsed.repeats ?? [];
    if (repeat) return this.duplicate(parsed.at, repeat[0], repeat[1], entries[repeat[0]][repeat[1]]!.key);
    // The lines that differ: a key twice among them, or one whose old line is still there, is a duplicate.
    const changed: Record<ListName, LineEntry[]> = { accounts: [], tokens: [], certificates: [] };
    for (const list of LISTS) {
      const keys = new Set<string>();
      const all = entries[list];
      for (let i = 0; i < all.length; i++) {
        const e = all[i]!;
        if (e.record === undefined) continue;
        if (keys.has(e.key) || this.byKey[list].get(e.key)?.seen === epoch) return this.duplicate(parsed.at, list, i, e.key);
        keys.add(e.key);
        changed[list].push(e);
      }
    }
    const first = !this.delivered;
    this.versions++;
    this.writable = LISTS.every((l) => entries[l].every((e) => e.canonical));
    const version = this.version;
    const outcome: FollowOutcome = first ? { kind: 'snapshot', data: parsed.data!, version, writable: this.writable } : { kind: 'changes', changes: this.apply(changed, epoch), version, writable: this.writable };
    if (first) for (const list of LISTS) for (const e of changed[list]) this.remember(list, e, epoch);
    // Set to undefined or '', not deleted: a deleted property turns each entry into a
    // dictionary of its own (~430 bytes, 43 MB of the reader's heap at 100,000 lines). The
    // bodies go, and with them the last reference into the file's text (see bodiesOf()); those
    // of a file the YAML parser read whole are keygate's own lines for its records, kept.
    const cut = parsed.entries !== undefined;
    for (const list of LISTS) {
      for (const e of entries[list]) {
        e.record = undefined;
        if (cut) e.body = '';
        e.fp = undefined;
      }
    }
    this.last = { entries, at: parsed.at };
    this.delivered = true;
    this.digest = digest;
    return outcome;
  }

  /**
   * Copies what this reader keeps between reads (its known lines, their keys and fingerprints,
   * the entries of the last version) into new objects, made one after another, and drops the
   * old ones. After a large parse those were made among the parsed records, which are garbage
   * once delivered; the pages they share stay half full, and V8's collection compacts such
   * pages only when it chooses to (at 100,000: the reader's old generation stayed at 52–59 MB
   * for 29 MB alive in some runs, 32 MB in others). Copied, the old pages hold nothing alive,
   * and the next collection gives them back. follow-worker.ts calls it after a large read.
   */
  compact(): void {
    const copy = (x: string) => {
      const c = Buffer.from(x, 'utf8').toString('utf8');
      return c === x ? c : x;
    };
    for (const list of LISTS) {
      const byKey = new Map<string, KnownLine>();
      const byBody = new Map<string, KnownLine>();
      for (const old of this.byKey[list].values()) {
        const line: KnownLine = { key: copy(old.key), fp: Buffer.from(old.fp, 'latin1').toString('latin1'), seen: old.seen };
        byKey.set(line.key, line);
        byBody.set(line.fp, line);
      }
      this.byKey[list] = byKey;
      this.byBody[list] = byBody;
      // In place: the last version's positioner holds these arrays.
      const entries = this.last?.entries[list] ?? [];
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        entries[i] = { key: byKey.get(e.key)?.key ?? copy(e.key), line: e.line, body: e.body, fp: undefined, record: undefined, canonical: e.canonical, col: e.col };
      }
    }
  }

  /**
   * Writes `changes` (puts and deletes, as an update's draft made them) into the version
   * `expected`, the one the caller's copy came from: each changed record's line in place of
   * the old one, a new record's at the end of its list, a deleted record's left out — the
   * order the whole-file rewrite gives. The caller holds the file's lock; the file must still
   * be byte for byte the version this reader holds (a hand edit since is not overwritten).
   * What was written becomes this reader's version, as a read of it would have.
   */
  async write(expected: string, changes: readonly StoreChange[]): Promise<WriteOutcome> {
    const last = this.last;
    if (!this.delivered || !this.writable || !last || this.digest === undefined || this.version !== expected) return { kind: 'stale' };
    const bytes = await this.readBytes().catch(() => undefined);
    if (!bytes || sha256(bytes) !== this.digest) return { kind: 'stale' };
    const kept = bodyRanges(bytes, last.entries);
    const puts: Record<ListName, Map<string, string>> = { accounts: new Map(), tokens: new Map(), certificates: new Map() };
    const deletes: Record<ListName, Set<string>> = { accounts: new Set(), tokens: new Set(), certificates: new Set() };
    for (const c of changes) {
      const list = LIST_OF[c.kind];
      if (c.op === 'delete') deletes[list].add(c.key);
      else puts[list].set(keyOf(list, c.record), recordLine(list, c.record));
    }
    // Each list's keys in the new order, and the new line of each put (undefined: kept as it was).
    const order: Record<ListName, { keys: string[]; fresh: Array<string | undefined> }> = { accounts: { keys: [], fresh: [] }, tokens: { keys: [], fresh: [] }, certificates: { keys: [], fresh: [] } };
    const lines = (list: ListName): LinePart[] => {
      const out: LinePart[] = [];
      const { keys, fresh } = order[list];
      const put = puts[list];
      last.entries[list].forEach((e, i) => {
        const line = put.get(e.key);
        if (line !== undefined) {
          out.push(line);
          put.delete(e.key);
        } else if (deletes[list].has(e.key)) return;
        else out.push(kept[list][i]!);
        keys.push(e.key);
        fresh.push(line);
      });
      for (const [key, line] of put) {
        out.push(line);
        keys.push(key);
        fresh.push(line);
      }
      return out;
    };
    const { bytes: text, digest } = serializeParts({ accounts: lines('accounts'), tokens: lines('tokens'), certificates: lines('certificates') }, bytes, bufferFor);
    try {
      await writeFileAtomic(this.file, text);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { kind: 'failed', error: { message: e.message, code: e.code, syscall: e.syscall, path: e.path, errno: e.errno } };
    }
    this.wrote(text, digest, order, deletes);
    return { kind: 'written', version: this.version };
  }

  /**
   * What was written becomes this reader's version, as a read of it would make it — without
   * reading it back: the positions are where serializeLines put the lines (layout.ts
   * linesLayout), and only the lines written anew are fingerprinted. (Reading back cost a
   * split, a digest per line and two digests of the whole file: ~0.4 s at 100,000 records.)
   */
  private wrote(text: Buffer, digest: string, order: Record<ListName, { keys: string[]; fresh: Array<string | undefined> }>, deletes: Record<ListName, Set<string>>): void {
    const epoch = this.epoch;
    const layout = linesLayout({ accounts: order.accounts.keys.length, tokens: order.tokens.keys.length, certificates: order.certificates.keys.length });
    const entries: Record<ListName, LineEntry[]> = { accounts: [], tokens: [], certificates: [] };
    let parsed = 0;
    for (const list of LISTS) {
      const byKey = this.byKey[list];
      const byBody = this.byBody[list];
      const forget = (key: string) => {
        const old = byKey.get(key);
        if (old === undefined) return;
        byBody.delete(old.fp);
        byKey.delete(key);
      };
      for (const key of deletes[list]) forget(key);
      const { keys, fresh } = order[list];
      keys.forEach((key, i) => {
        const line = fresh[i];
        if (line !== undefined) {
          parsed++;
          forget(key);
          const known: KnownLine = { key, fp: lineFingerprint(line), seen: epoch };
          byBody.set(known.fp, known);
          byKey.set(key, known);
        }
        entries[list].push({ key, line: layout.first[list] + i, body: '', fp: undefined, record: undefined, canonical: true, col: ITEM_COL });
      });
    }
    this.last = { entries, at: linePositioner(this.file, entries, layout.headers, layout.versionLine) };
    this.versions++;
    this.writable = true;
    this.lastParsed = parsed;
    this.lastSize = text.length;
    this.digest = digest;
  }

  /**
   * The changes from the last version delivered, and the known lines brought up to date. Puts
   * for the lines that differ; deletes for the keys whose line was not seen again and that no
   * changed line holds. Accounts come first among puts and last among deletes (as
   * store/diff.ts orders them), so that no credential ever names an account that does not exist.
   */
  private apply(changed: Record<ListName, LineEntry[]>, epoch: number): StoreChange[] {
    const puts: StoreChange[] = [];
    const deletes: StoreChange[] = [];
    for (const list of LISTS) {
      const putKeys = new Set(changed[list].map((e) => e.key));
      for (const line of this.byKey[list].values()) {
        if (line.seen === epoch) continue;
        this.byBody[list].delete(line.fp);
        this.byKey[list].delete(line.key);
        if (!putKeys.has(line.key)) deletes.push({ op: 'delete', kind: KIND[list], key: line.key });
      }
      for (const e of changed[list]) {
        puts.push({ op: 'put', kind: KIND[list], record: e.record } as StoreChange);
        this.remember(list, e, epoch);
      }
    }
    const accountsLast = (c: StoreChange) => (c.kind === 'account' ? 1 : 0);
    return [...puts, ...deletes.sort((a, b) => accountsLast(a) - accountsLast(b))];
  }

  /** A line of the version being taken, by its fingerprint (computed here on a first read, which looks none up). */
  private remember(list: ListName, e: LineEntry, epoch: number): void {
    const fp = e.fp ?? lineFingerprint(e.body);
    const line: KnownLine = { key: e.key, fp, seen: epoch };
    this.byBody[list].set(fp, line);
    this.byKey[list].set(e.key, line);
  }

  private duplicate(at: Positioner, list: ListName, index: number, key: string): FollowOutcome {
    return { kind: 'rejected', problems: [at.problemAt([list, index, list === 'accounts' ? 'name' : 'id'], `duplicate ${DUPLICATE[list]} "${key}"`)] };
  }

  /**
   * Positions problems in the last version delivered. A field's column is found in its line,
   * which is read back from the file for the lines named, as long as the file is still that
   * version (else the problem points at the line's start).
   */
  async locate(problems: readonly KeyedProblem[]): Promise<Problem[]> {
    const last = this.last;
    const restored: LineEntry[] = [];
    const at = problems.map((p) => (last && p.list !== undefined && p.key !== undefined ? last.entries[p.list].findIndex((e) => e.key === p.key) : -1));
    if (last && at.some((i) => i >= 0) && this.digest !== undefined) {
      const bytes = await this.readBytes().catch(() => undefined);
      if (bytes && sha256(bytes) === this.digest) {
        const bodies = bodiesOf(bytes, last.entries);
        problems.forEach((p, k) => {
          const e = at[k]! >= 0 ? last.entries[p.list!][at[k]!] : undefined;
          if (e && e.body === '') restored.push(Object.assign(e, { body: bodies[p.list!][at[k]!]! }));
        });
      }
    }
    const out = problems.map((p, k) => {
      if (!last) return { file: this.file, line: 1, col: 1, message: p.message };
      if (p.list === undefined || p.key === undefined) return last.at.problemAt(p.path, p.message);
      const i = at[k]!;
      return last.at.problemAt(i < 0 ? [p.list] : [p.list, i, ...p.path], p.message);
    });
    for (const e of restored) e.body = '';
    return out;
  }

  /**
   * Once the file had content, its disappearance is an accident, never "no credentials":
   * emptying the store on purpose goes through the CLI or the admin API, which write a
   * complete (empty) document.
   */
  private absent(why: 'gone' | 'empty'): FollowOutcome {
    if (LISTS.some((l) => this.byKey[l].size > 0)) {
      return { kind: 'rejected', problems: [{ file: this.file, line: 1, col: 1, message: `the credential file is ${why}; keeping the last version. Restore it; to remove every credential, delete them with keygate account delete or import an empty store (keygate store import)` }] };
    }
    const first = !this.delivered;
    this.last = { entries: { accounts: [], tokens: [], certificates: [] }, at: { problemAt: (_p, message) => ({ file: this.file, line: 1, col: 1, message }) } };
    this.delivered = true;
    this.digest = undefined;
    this.versions++;
    this.writable = false;
    const version = this.version;
    return first ? { kind: 'snapshot', data: { version: 1, accounts: [], tokens: [], certificates: [] }, version, writable: false } : { kind: 'changes', changes: [], version, writable: false };
  }
}

/** Above this, a buffer for the file's bytes is made larger than glibc's largest mmap threshold. */
const LARGE = 1 << 20;
/** glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems, and a page. */
const MAPPED = (32 << 20) + 4096;

/**
 * A buffer for `size` bytes of the file. A large one is made larger than 32 MiB, so that malloc
 * always maps it on its own and unmaps it when it is freed; the pages past the file's bytes
 * are never touched and cost no memory. A block of 1–32 MiB freed by glibc raises its
 * threshold for mapping to that size, and every later block of that size then comes from, and
 * goes back to, its heap, which does not shrink: with a fresh ~32 MB buffer per read and write,
 * the reader thread's RSS grew by ~200 MB over 40 writes at 100,000 records.
 */
function bufferFor(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size < LARGE ? size : Math.max(size, MAPPED));
}

/**
 * Where the body of each entry is in `bytes` — the very version the entries were read from
 * (the caller checked its digest): from the entry's column (after blanks and "- ", one byte
 * each) to its closing brace (a line of a writable version is keygate's own JSON). An entry
 * that kept its text (linesOf()) is given as that text.
 */
function bodyRanges(bytes: Buffer, entries: Record<ListName, LineEntry[]>): Record<ListName, LinePart[]> {
  const starts: number[] = [0];
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) starts.push(i + 1);
  const of = (list: ListName): LinePart[] =>
    entries[list].map((e) => {
      if (e.body !== '') return e.body;
      const start = starts[e.line - 1]! + e.col - 1;
      let end = (starts[e.line] ?? bytes.length + 1) - 1;
      while (end > start && bytes[end - 1] !== 0x7d /* } */) end--;
      return { start, end };
    });
  return { accounts: of('accounts'), tokens: of('tokens'), certificates: of('certificates') };
}

/**
 * The body of each entry, cut from `bytes` — the very version the entries were read from (the
 * caller checked its digest) — as layout.ts readLines cut it: the line without its '\r', from
 * the entry's column, trailing blanks dropped unless it ends with '}'.
 */
function bodiesOf(bytes: Buffer, entries: Record<ListName, LineEntry[]>): Record<ListName, string[]> {
  const lines = bytes.toString('utf8').split('\n');
  const of = (list: ListName): string[] =>
    entries[list].map((e) => {
      if (e.body !== '') return e.body; // kept (linesOf()), or never let go
      let line = lines[e.line - 1] ?? '';
      if (line.endsWith('\r')) line = line.slice(0, -1);
      const body = line.slice(e.col - 1);
      return body.endsWith('}') ? body : body.trimEnd();
    });
  return { accounts: of('accounts'), tokens: of('tokens'), certificates: of('certificates') };
}

/** The lines keygate would write for data the YAML parser read (to compare with the next version). */
function linesOf(data: StoreData): Record<ListName, LineEntry[]> {
  const of = (list: ListName): LineEntry[] => (data[list] as object[]).map((record) => ({ key: keyOf(list, record), line: 0, body: recordLine(list, record), fp: undefined, record, canonical: true, col: 1 }));
  return { accounts: of('accounts'), tokens: of('tokens'), certificates: of('certificates') };
}

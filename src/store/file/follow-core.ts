// What a running proxy's reader of the credential file does on each change, in a worker thread
// (follow-worker.ts) so that none of it runs on the event loop that answers requests: read the
// file, compare its record lines with the last version's, parse and validate only the lines
// that differ, and hand back the records that changed. A revocation in 100,000 credentials is
// one line parsed here and one change applied by the proxy (runtime/inventory.ts).
//
// It also writes the changes the proxy's admin API makes (write()): the proxy ran the mutation
// on its own copy and sends only the changed records; their lines are put in place of the old
// ones here, so that the event loop never reads, parses or serializes the whole file.
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Problem, ValuePath } from '../../config/source.js';
import type { StoreChange, StoreData } from '../types.js';
import { writeFileAtomic } from './atomic-file.js';
import { keyOf, LISTS, parseStoreFile, recordLine, serializeLines, type KnownLine, type LineEntry, type ListName, type Positioner } from './layout.js';

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
   * The lines of the last version delivered, by text and by key. Kept from read to read and
   * changed only where the file changed: a read costs one lookup per line, and work in
   * proportion to the lines that differ.
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
    if (this.delivered && this.digest !== undefined && sha256(bytes) === this.digest) {
      this.lastParsed = 0;
      return { kind: 'changes', changes: [], version: this.version, writable: this.writable };
    }
    return this.take(bytes);
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

  /** Reads these bytes as the next version. */
  private take(bytes: Buffer): FollowOutcome {
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
          const hit = this.byBody[list].get(e.body);
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
    if (first) for (const list of LISTS) for (const e of changed[list]) this.remember(list, e, epoch, false);
    // Set to undefined, not deleted: a deleted property turns each entry into a dictionary of
    // its own (~430 bytes, 43 MB of the reader's heap at 100,000 lines).
    for (const list of LISTS) for (const e of entries[list]) e.record = undefined;
    this.last = { entries, at: parsed.at };
    this.delivered = true;
    this.digest = sha256(bytes);
    return outcome;
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
    const puts: Record<ListName, Map<string, string>> = { accounts: new Map(), tokens: new Map(), certificates: new Map() };
    const deletes: Record<ListName, Set<string>> = { accounts: new Set(), tokens: new Set(), certificates: new Set() };
    for (const c of changes) {
      const list = LIST_OF[c.kind];
      if (c.op === 'delete') deletes[list].add(c.key);
      else puts[list].set(keyOf(list, c.record), recordLine(list, c.record));
    }
    const lines = (list: ListName): string[] => {
      const out: string[] = [];
      const put = puts[list];
      for (const e of last.entries[list]) {
        const line = put.get(e.key);
        if (line !== undefined) {
          out.push(line);
          put.delete(e.key);
        } else if (!deletes[list].has(e.key)) out.push(e.body);
      }
      for (const line of put.values()) out.push(line);
      return out;
    };
    const body = serializeLines({ accounts: lines('accounts'), tokens: lines('tokens'), certificates: lines('certificates') });
    const out = bufferFor(Buffer.byteLength(body, 'utf8'));
    const text = out.subarray(0, out.write(body, 0, 'utf8'));
    try {
      await writeFileAtomic(this.file, text);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { kind: 'failed', error: { message: e.message, code: e.code, syscall: e.syscall, path: e.path, errno: e.errno } };
    }
    const read = this.take(text);
    return read.kind === 'rejected' ? read : { kind: 'written', version: this.version };
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
        this.byBody[list].delete(line.body);
        this.byKey[list].delete(line.key);
        if (!putKeys.has(line.key)) deletes.push({ op: 'delete', kind: KIND[list], key: line.key });
      }
      for (const e of changed[list]) {
        puts.push({ op: 'put', kind: KIND[list], record: e.record } as StoreChange);
        this.remember(list, e, epoch, true);
      }
    }
    const accountsLast = (c: StoreChange) => (c.kind === 'account' ? 1 : 0);
    return [...puts, ...deletes.sort((a, b) => accountsLast(a) - accountsLast(b))];
  }

  /**
   * `copy`: a line of a later version is copied out of the file's text, which would otherwise
   * stay in memory whole for its sake.
   */
  private remember(list: ListName, e: LineEntry, epoch: number, copy: boolean): void {
    const body = copy ? Buffer.from(e.body, 'utf8').toString('utf8') : e.body;
    const line: KnownLine = { key: e.key, body, seen: epoch };
    e.body = body;
    this.byBody[list].set(body, line);
    this.byKey[list].set(e.key, line);
  }

  private duplicate(at: Positioner, list: ListName, index: number, key: string): FollowOutcome {
    return { kind: 'rejected', problems: [at.problemAt([list, index, list === 'accounts' ? 'name' : 'id'], `duplicate ${DUPLICATE[list]} "${key}"`)] };
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

/** The lines keygate would write for data the YAML parser read (to compare with the next version). */
function linesOf(data: StoreData): Record<ListName, LineEntry[]> {
  const of = (list: ListName): LineEntry[] => (data[list] as object[]).map((record) => ({ key: keyOf(list, record), line: 0, body: recordLine(list, record), record, canonical: true, col: 1 }));
  return { accounts: of('accounts'), tokens: of('tokens'), certificates: of('certificates') };
}

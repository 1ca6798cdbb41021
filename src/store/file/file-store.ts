// The embedded default credential store: one YAML file, written atomically under a lock by the
// CLI and the admin API, watched by the running proxy. Last-use times go to a sidecar JSON file
// (<name>.usage.json) so that the proxy never rewrites the file operators edit.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SourceError, type Problem } from '../../config/source.js';
import { withFileLock, writeFileAtomic } from './atomic-file.js';
import { isFsError, readFault, writeFault } from './fs-fault.js';
import { followFile, type FileFollower } from './follower.js';
import { LISTS, parseStoreFile, serializeStore, type LineEntry, type ListName, type Positioner } from './layout.js';
import { emptyStore, type CredentialStore, type DataProblem, type StoreData, type StoreFeed, type StoreFollower, type UsageMap } from '../types.js';

export { END_LINE, isCutShort, serializeStore } from './layout.js';

export interface StoreSource {
  data?: StoreData;
  /** Where the values of the version read are. */
  source?: Positioner;
  problems: Problem[];
  /** The file could not be read at all (not a problem of its content). */
  unreadable?: NodeJS.ErrnoException & { code: string };
  /** The file did not exist, or held nothing but white space (read as an empty store). */
  absent?: 'missing' | 'empty';
  /** The record lines, when the file is in keygate's layout (store/file/layout.ts). */
  entries?: Record<ListName, LineEntry[]>;
}

export function usageFileFor(file: string): string {
  return join(dirname(file), basename(file).replace(/\.ya?ml$/i, '') + '.usage.json');
}

export interface FileStoreOptions {
  /** Where a follower reads the file: a worker thread (the default where it is built) or this thread. */
  reader?: 'worker' | 'thread';
}

export class FileStore implements CredentialStore {
  readonly kind = 'file' as const;
  readonly usageFile: string;

  constructor(
    readonly file: string,
    private readonly options: FileStoreOptions = {},
  ) {
    this.usageFile = usageFileFor(file);
  }

  get description(): string {
    return `file ${this.file}`;
  }

  /** The data with every problem and its position; a missing file is an empty store. */
  async readSource(): Promise<StoreSource> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { data: emptyStore(), problems: [], absent: 'missing' };
      return { problems: [{ file: this.file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }], ...(isFsError(err) ? { unreadable: err } : {}) };
    }
    const parsed = parseStoreFile(this.file, bytes);
    if (parsed.empty) return { data: emptyStore(), problems: [], absent: 'empty' };
    const { data, problems, at, entries } = parsed;
    return { ...(data ? { data } : {}), source: at, problems, ...(entries ? { entries } : {}) };
  }

  async load(check?: (data: StoreData) => readonly DataProblem[]): Promise<{ data?: StoreData; problems: Problem[] }> {
    const src = await this.readSource();
    if (!src.data || !check) return { ...(src.data ? { data: src.data } : {}), problems: src.problems };
    const found = check(src.data);
    return found.length ? { problems: found.map((p) => (src.source ? src.source.problemAt(p.path, p.message) : { file: this.file, line: 1, col: 1, message: p.message })) } : { data: src.data, problems: [] };
  }

  /** The follower started last: cross-check problems of what it delivered are positioned in the file it read. */
  private follower: FileFollower | undefined;

  async locate(problems: readonly DataProblem[], data?: StoreData): Promise<Problem[]> {
    if (this.follower) return this.follower.locate(problems, data);
    return problems.map((p) => ({ file: this.file, line: 1, col: 1, message: p.message }));
  }

  /** The data; a file that cannot be read is KG_ERR_STORE_UNAVAILABLE, one with errors a SourceError. */
  async read(): Promise<StoreData> {
    return dataOf(this.file, await this.readSource());
  }

  /**
   * Read, change and replace the file under its lock. In a process that follows the file (a
   * running proxy: its admin API) the mutation runs on a copy-on-write draft of the version
   * followed, and the reader thread writes only the changed records' lines (follower.ts): the
   * event loop never handles the whole file. A file-system error on the lock, the
   * temporary file or the file (all in its folder) becomes a fault that says what is wrong here
   * (store/file/fs-fault.ts); nothing was changed then.
   */
  async update<T>(mutate: (data: StoreData) => T): Promise<T> {
    const follower = this.follower;
    try {
      return await withFileLock(this.file, async () => {
        // A process that follows the file writes by the changed lines (follower.ts update()).
        const written = follower ? await follower.update(mutate) : undefined;
        if (written) return written.result;
        const src = await this.readSource();
        const data = dataOf(this.file, src);
        const unchanged = src.entries ? linesKept(data, src.entries) : undefined;
        const result = mutate(data);
        await writeFileAtomic(this.file, serializeStore(data, unchanged));
        return result;
      });
    } catch (err) {
      if (isFsError(err) && (err.path === undefined || dirname(err.path) === dirname(this.file))) throw writeFault(this.file, err);
      throw err;
    }
  }

  /**
   * Re-reads the file when it changes and reports the records that changed since the last
   * version read (store/file/follower.ts: in a worker thread, line by line). The revision counts
   * the versions this process has seen: the file itself keeps none.
   */
  follow(feed: StoreFeed): StoreFollower {
    const follower = followFile(this.file, feed, this.options.reader);
    this.follower = follower;
    return {
      sync: () => follower.sync(),
      stop: () => {
        follower.stop();
        if (this.follower === follower) this.follower = undefined;
      },
    };
  }

  async readUsage(): Promise<UsageMap> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.usageFile, 'utf8'));
      const out: UsageMap = {};
      if (parsed && typeof parsed === 'object') {
        for (const [id, t] of Object.entries(parsed)) if (typeof t === 'number' && Number.isFinite(t)) out[id] = t;
      }
      return out;
    } catch {
      return {};
    }
  }

  async writeUsage(usage: UsageMap): Promise<void> {
    if (Object.keys(usage).length === 0) return;
    await withFileLock(this.usageFile, async () => {
      const merged = await this.readUsage();
      for (const [id, t] of Object.entries(usage)) if (!(merged[id]! >= t)) merged[id] = t;
      await writeFileAtomic(this.usageFile, JSON.stringify(merged, null, 1) + '\n');
    });
  }

  async close(): Promise<void> {}
}

/** The data of a read; a file that cannot be read is KG_ERR_STORE_UNAVAILABLE, one with errors a SourceError. */
function dataOf(file: string, src: StoreSource): StoreData {
  if (src.unreadable) throw readFault(file, src.unreadable);
  if (!src.data) throw new SourceError(src.problems);
  return src.data;
}

/**
 * For writing back after an update: the line each record was read from, as long as the record
 * is unchanged. Updates change records in place (store/operations.ts), so what each held is
 * remembered here — its values, lists copied — and compared when it is written.
 */
function linesKept(data: StoreData, entries: Record<ListName, LineEntry[]>): (list: ListName, record: object) => string | undefined {
  const kept = new Map<object, { body: string; values: unknown[] }>();
  for (const list of LISTS) {
    const records: readonly object[] = data[list];
    records.forEach((r, i) => {
      const e = entries[list][i];
      if (e?.canonical) kept.set(r, { body: e.body, values: Object.values(r).map((v) => (Array.isArray(v) ? [...(v as unknown[])] : v)) });
    });
  }
  return (_list, record) => {
    const k = kept.get(record);
    if (!k) return undefined;
    const now = Object.values(record);
    if (now.length !== k.values.length) return undefined;
    for (let i = 0; i < now.length; i++) {
      const [a, b] = [now[i], k.values[i]];
      if (a === b) continue;
      if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length || a.some((x, j) => x !== b[j])) return undefined;
    }
    return k.body;
  };
}

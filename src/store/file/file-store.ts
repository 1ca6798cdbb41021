// The embedded default credential store: one YAML file, written atomically under a lock by the
// CLI and the admin API, watched by the running proxy. Last-use times go to a sidecar JSON file
// (<name>.usage.json) so that the proxy never rewrites the file operators edit.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Document } from 'yaml';
import { parseYamlText, SourceError, type Problem, type YamlSource } from '../../config/source.js';
import { validateSource } from '../../config/validate.js';
import { watchFile } from '../../config/watch-file.js';
import { withFileLock, writeFileAtomic } from './atomic-file.js';
import { isFsError, readFault, writeFault } from './fs-fault.js';
import { storeSchema } from '../schema.js';
import { diffStoreData } from '../diff.js';
import { emptyStore, type CredentialStore, type DataProblem, type StoreData, type StoreFeed, type StoreFollower, type UsageMap } from '../types.js';

/**
 * The last line keygate writes. A file that announces it in its header (every file keygate
 * wrote since v0.2) and does not end with it was cut short — a full disk, a copy that died, an
 * editor that crashed while saving — and is refused, so that half a file never costs every
 * token after the cut. Hand-written files without the header need no end line.
 */
export const END_LINE = '# end of keygate credential store';
const ANNOUNCE = 'keygate ends this file with the line';
const HEADER = ` keygate credential store. Managed by \`keygate account|token|cert\` and the admin API.\n Holds no secret: tokens are stored as SHA-256 hashes only.\n ${ANNOUNCE} "${END_LINE}";\n a file that starts with this header and lacks that line is taken as cut short and refused.`;

export interface StoreSource {
  data?: StoreData;
  source?: YamlSource;
  problems: Problem[];
  /** The file could not be read at all (not a problem of its content). */
  unreadable?: NodeJS.ErrnoException & { code: string };
  /** The file did not exist, or held nothing but white space (read as an empty store). */
  absent?: 'missing' | 'empty';
}

/** True when a file keygate wrote lost its end: the header announces the end line, the end lacks it. */
export function isCutShort(text: string): boolean {
  const head = text.slice(0, 1024);
  const announced = head.startsWith('# keygate credential store') && head.includes(ANNOUNCE);
  return announced && !text.trimEnd().endsWith(END_LINE);
}

export function usageFileFor(file: string): string {
  return join(dirname(file), basename(file).replace(/\.ya?ml$/i, '') + '.usage.json');
}

export class FileStore implements CredentialStore {
  readonly kind = 'file' as const;
  readonly usageFile: string;

  constructor(readonly file: string) {
    this.usageFile = usageFileFor(file);
  }

  get description(): string {
    return `file ${this.file}`;
  }

  /** The data with every problem and its position; a missing file is an empty store. */
  async readSource(): Promise<StoreSource> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { data: emptyStore(), problems: [], absent: 'missing' };
      return { problems: [{ file: this.file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }], ...(isFsError(err) ? { unreadable: err } : {}) };
    }
    if (text.trim() === '') return { data: emptyStore(), problems: [], absent: 'empty' };
    if (isCutShort(text)) {
      const line = text.trimEnd().split('\n').length;
      return { problems: [{ file: this.file, line, col: 1, message: `the file ends here without its last line "${END_LINE}": it was cut short (a full disk, a copy or save that died); nothing was changed. Restore it from a backup, or add that line if you edited it by hand` }] };
    }
    const source = parseYamlText(this.file, text);
    const { value, problems } = validateSource(source, storeSchema);
    return value && problems.length === 0 ? { data: value, source, problems } : { source, problems };
  }

  async load(check?: (data: StoreData) => readonly DataProblem[]): Promise<{ data?: StoreData; problems: Problem[] }> {
    const src = await this.readSource();
    if (!src.data || !check) return src;
    const found = check(src.data);
    return found.length ? { problems: this.position(src, found) } : src;
  }

  /** Data problems positioned in the file they were read from. */
  private position(src: StoreSource | undefined, problems: readonly DataProblem[]): Problem[] {
    return problems.map((p) => (src?.source ? src.source.problemAt(p.path, p.message) : { file: this.file, line: 1, col: 1, message: p.message }));
  }

  /** The version `follow` read last: what a follower's cross-check problems point into. */
  private lastRead: StoreSource | undefined;

  locate(problems: readonly DataProblem[]): Problem[] {
    return this.position(this.lastRead, problems);
  }

  /** The data; a file that cannot be read is KG_ERR_STORE_UNAVAILABLE, one with errors a SourceError. */
  async read(): Promise<StoreData> {
    const { data, problems, unreadable } = await this.readSource();
    if (unreadable) throw readFault(this.file, unreadable);
    if (!data) throw new SourceError(problems);
    return data;
  }

  /**
   * Read, change and replace the file under its lock. A file-system error on the lock, the
   * temporary file or the file (all in its folder) becomes a fault that says what is wrong here
   * (store/file/fs-fault.ts); nothing was changed then.
   */
  async update<T>(mutate: (data: StoreData) => T): Promise<T> {
    try {
      return await withFileLock(this.file, async () => {
        const data = await this.read();
        const result = mutate(data);
        await writeFileAtomic(this.file, serializeStore(data));
        return result;
      });
    } catch (err) {
      if (isFsError(err) && (err.path === undefined || dirname(err.path) === dirname(this.file))) throw writeFault(this.file, err);
      throw err;
    }
  }

  /**
   * Re-reads the file when it changes and reports the difference to the last version read.
   * The revision counts the versions this process has seen: the file itself keeps none.
   */
  follow(feed: StoreFeed): StoreFollower {
    let last: StoreData | undefined;
    let revision = 0;
    let stopped = false;
    let reading: Promise<void> = Promise.resolve();
    const read = (): Promise<void> =>
      (reading = reading.then(async () => {
        if (stopped) return;
        const src = await this.readSource();
        if (stopped) return;
        const data = src.data;
        if (!data) return feed.onRejected?.(src.problems);
        // Once the file had content, its disappearance is an accident, never "no credentials":
        // emptying the store on purpose goes through the CLI or the admin API, which write a
        // complete (empty) document.
        if (src.absent && last && !isEmptyStore(last)) return feed.onRejected?.([{ file: this.file, line: 1, col: 1, message: `the credential file is ${src.absent === 'missing' ? 'gone' : 'empty'}; keeping the last version. Restore it; to remove every credential, delete them with keygate account delete or import an empty store (keygate store import)` }]);
        this.lastRead = src;
        revision++;
        if (!last) feed.onSnapshot(data, revision);
        else feed.onChanges(diffStoreData(last, data), revision);
        last = data;
      }));
    void read();
    const unwatch = watchFile(this.file, () => void read());
    return {
      sync: read,
      stop: () => {
        stopped = true;
        unwatch();
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

export function serializeStore(data: StoreData): string {
  const doc = new Document(data);
  doc.commentBefore = HEADER;
  return `${doc.toString({ lineWidth: 0 })}${END_LINE}\n`;
}

function isEmptyStore(d: StoreData): boolean {
  return d.accounts.length === 0 && d.tokens.length === 0 && d.certificates.length === 0;
}

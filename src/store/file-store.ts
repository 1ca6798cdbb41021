// The embedded default credential store: one YAML file, written atomically under a lock by the
// CLI and the admin API, watched by the running proxy. Last-use times go to a sidecar JSON file
// (<name>.usage.json) so that the proxy never rewrites the file operators edit.
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Document } from 'yaml';
import { parseYamlText, SourceError, type Problem, type YamlSource } from '../config/source.js';
import { validateSource } from '../config/validate.js';
import { withFileLock, writeFileAtomic } from './atomic-file.js';
import { storeSchema } from './schema.js';
import { diffStoreData } from './diff.js';
import { emptyStore, type CredentialStore, type StoreData, type StoreFeed, type UsageMap } from './types.js';

const HEADER = ' keygate credential store. Managed by `keygate account|token|cert` and the admin API.\n Holds no secret: tokens are stored as SHA-256 hashes only.';

export interface StoreSource {
  data?: StoreData;
  source?: YamlSource;
  problems: Problem[];
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
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { data: emptyStore(), problems: [] };
      return { problems: [{ file: this.file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }] };
    }
    if (text.trim() === '') return { data: emptyStore(), problems: [] };
    const source = parseYamlText(this.file, text);
    const { value, problems } = validateSource(source, storeSchema);
    return value && problems.length === 0 ? { data: value, source, problems } : { source, problems };
  }

  async read(): Promise<StoreData> {
    const { data, problems } = await this.readSource();
    if (!data) throw new SourceError(problems);
    return data;
  }

  async update<T>(mutate: (data: StoreData) => T): Promise<T> {
    return withFileLock(this.file, async () => {
      const data = await this.read();
      const result = mutate(data);
      await writeFileAtomic(this.file, serializeStore(data));
      return result;
    });
  }

  /**
   * Re-reads the file when it changes and reports the difference to the last version read. The
   * revision counts the versions this process has seen: the file itself keeps none.
   */
  follow(feed: StoreFeed): () => void {
    let last: StoreData | undefined;
    let revision = 0;
    let stopped = false;
    let reading: Promise<void> = Promise.resolve();
    const read = () =>
      (reading = reading.then(async () => {
        if (stopped) return;
        const { data, problems } = await this.readSource();
        if (stopped) return;
        if (!data) return feed.onRejected?.(problems);
        revision++;
        if (!last) feed.onSnapshot(data, revision);
        else feed.onChanges(diffStoreData(last, data), revision);
        last = data;
      }));
    void read();
    const unwatch = watchFile(this.file, () => void read());
    return () => {
      stopped = true;
      unwatch();
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
  return doc.toString({ lineWidth: 0 });
}

/**
 * Calls `onChange` (debounced) when `file` is written, created, replaced by rename or removed.
 * Watches the folder, because an atomic replace swaps the inode a file watch would follow.
 */
export function watchFile(file: string, onChange: () => void, debounceMs = 30): () => void {
  const name = basename(file);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = fsWatch(dirname(file), { persistent: false }, (_event, changed) => {
      // Kubernetes mounts Secrets and ConfigMaps as symlinks into `..data`, and updates them by
      // swapping that one symlink: the file's own name never shows up in an event.
      if (changed !== null && changed !== name && changed !== '..data') return;
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    watcher.on('error', () => undefined);
  } catch {
    // The folder does not exist (yet): nothing to watch; SIGHUP still reloads.
  }
  return () => {
    clearTimeout(timer);
    watcher?.close();
  };
}

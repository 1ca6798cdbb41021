// Watching the files keygate reads (keygate.yaml, the credential file, TLS files) for changes,
// the way operators and Kubernetes replace them.
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

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

// Crash-safe file replacement and a cross-process lock, for the file store and the CLI.
import { randomBytes } from 'node:crypto';
import { KeygateFault } from '../../errors/fault.js';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Write to a temp file in the same folder, fsync it, rename over the target, fsync the folder. */
export async function writeFileAtomic(file: string, content: string, mode = 0o600): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(content, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dh = await open(dir, 'r').catch(() => undefined);
  if (dh) await dh.sync().catch(() => undefined).finally(() => dh.close());
}

export class LockTimeoutError extends KeygateFault {
  constructor(lockFile: string) {
    super('KG_ERR_STORE_LOCKED', `could not lock ${lockFile}: another keygate command holds it (remove the file if no keygate command is running)`, { 'retry-after': '1' });
  }
}

const STALE_MS = 30_000;

/**
 * Runs `fn` while holding `<file>.lock` (created with O_EXCL). Bounded: gives up after
 * `timeoutMs`; a lock older than 30 s is taken as left behind by a crashed process.
 */
export async function withFileLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await stat(lock).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > STALE_MS) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new LockTimeoutError(lock);
      await new Promise((r) => setTimeout(r, Math.min(10 * 2 ** Math.min(attempt, 5), 200)));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

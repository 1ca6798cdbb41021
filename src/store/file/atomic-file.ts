// Crash-safe file replacement and a cross-process lock, for the file store and the CLI.
import { randomBytes } from 'node:crypto';
import { KeygateFault } from '../../errors/fault.js';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

/** Write to a temp file in the same folder, fsync it, rename over the target, fsync the folder. */
export async function writeFileAtomic(file: string, content: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(content);
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

/** A lock whose owner cannot be asked (another host, an unreadable file) is stale at this age. */
const STALE_MS = 30_000;
/** A takeover in progress is abandoned by its owner after at most this long. */
const TAKEOVER_STALE_MS = 10_000;

/**
 * How long one holder may keep the lock of a store of `bytes` before a waiter gives up. Every
 * writer reads, changes and rewrites the whole file under the lock, and reading YAML is slow
 * (about 2 s for 10,000 tokens, 3.5 MB, on a loaded two-core machine): 5 s plus 4 ms per KiB.
 * The wait restarts whenever the lock changes hands, so 20 writers queued on a large store
 * all get through in turn (v0.1 gave each 5 s in all: 18 of 20 failed with 10,000 tokens); only
 * a holder that stops making progress makes the others fail.
 */
export function lockWaitMs(bytes: number): number {
  return 5_000 + Math.ceil((4 * bytes) / 1024);
}

/** What a lock file holds: `<pid>@<host>#<nonce>` (a bare pid is read as this host's). */
const OWNER = /^(\d{1,10})(?:@([^\s#]+))?(?:#[0-9a-f]+)?$/;

/** The pid in a lock file, when it names a process of this host; undefined: nobody we can ask. */
async function ownerOf(lock: string): Promise<number | undefined> {
  const text = await readFile(lock, 'utf8').catch(() => undefined);
  const m = text === undefined ? null : OWNER.exec(text.trim());
  if (!m || (m[2] !== undefined && m[2] !== hostname())) return undefined;
  const pid = Number(m[1]);
  return pid > 0 ? pid : undefined;
}

/** Whether process `pid` exists on this host (signal 0 asks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes `lock` if it was left behind: its owner's pid is gone (a `kill -9`, a crash) — taken
 * over at once — or it is older than STALE_MS and names no pid we can ask. Two writers that
 * find the same stale lock go through a takeover lock of their own (O_EXCL too), and the one
 * that gets it checks the owner again before it removes anything, so a lock just taken by a
 * third writer is never removed by mistake. True when the caller should try again at once.
 */
async function removeIfStale(lock: string): Promise<boolean> {
  const pid = await ownerOf(lock);
  // A live owner is waited for (this process too: two updates of one admin API); a reused pid
  // or an owner on another host is caught by the age.
  if ((pid === undefined || alive(pid)) && !(await olderThan(lock, STALE_MS))) return false;
  const takeover = `${lock}.takeover`;
  let fh;
  try {
    fh = await open(takeover, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Someone else is taking over; if they died doing it, their takeover lock goes stale.
    if (await olderThan(takeover, TAKEOVER_STALE_MS)) await unlink(takeover).catch(() => undefined);
    return false;
  }
  try {
    await fh.close();
    const again = await ownerOf(lock);
    if (again === pid) await unlink(lock).catch(() => undefined);
    return true;
  } finally {
    await unlink(takeover).catch(() => undefined);
  }
}

async function olderThan(file: string, ms: number): Promise<boolean> {
  const st = await stat(file).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs > ms;
}

/**
 * Runs `fn` while holding `<file>.lock` (created with O_EXCL, holding this process's pid).
 * Bounded: gives up after `timeoutMs` (default: lockWaitMs of the file's size). A lock whose
 * owner is gone is taken over at once.
 */
export async function withFileLock<T>(file: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const lock = `${file}.lock`;
  const wait = timeoutMs ?? lockWaitMs((await stat(file).catch(() => undefined))?.size ?? 0);
  let deadline = Date.now() + wait;
  // Each taker writes a nonce too, so that a change of hands is seen even within one process.
  const me = `${process.pid}@${hostname()}#${randomBytes(4).toString('hex')}`;
  let lastHolder: string | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(me);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await removeIfStale(lock)) continue;
      const holder = await readFile(lock, 'utf8').catch(() => undefined);
      if (holder !== undefined && holder !== lastHolder) {
        // Progress: the lock changed hands since we last looked. The wait starts again.
        if (lastHolder !== undefined) deadline = Date.now() + wait;
        lastHolder = holder;
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

// The credential file's lock (issue 8): a waiter gives up only when one holder keeps the lock
// too long, not when many writers queue up, and that bound grows with the store's size. In
// v0.1 every writer had 5 s in all: with 10,000 tokens 18 of 20 parallel `token create` failed.
// The holders here are this process under other nonces (alive, so never taken over), handing
// the lock on the way a queue of CLI commands does.
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, lockWaitMs, withFileLock } from '../../src/store/file/atomic-file.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'credentials.yaml');
const lock = `${file}.lock`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Another live holder: this pid, another nonce. */
const holdAs = (n: number) => writeFileSync(lock, `${process.pid}@h#${n.toString(16).padStart(8, '0')}`, { flag: 'w' });

describe('lockWaitMs', () => {
  it('grows with the store: 5 s for an empty one, more for 10,000 tokens (3.5 MB)', () => {
    expect(lockWaitMs(0)).toBe(5_000);
    expect(lockWaitMs(3_500_000)).toBeGreaterThan(15_000);
    expect(lockWaitMs(3_500_000)).toBeGreaterThan(lockWaitMs(350_000));
  });
});

describe('a writer waiting for the lock', () => {
  it('keeps waiting while the lock changes hands, longer than its bound in all', async () => {
    holdAs(1);
    let done = false;
    const started = performance.now();
    const writer = withFileLock(file, async () => (done = true), 1_500);
    // Six holders in a row, 400 ms each: 2.4 s in all against a bound of 1.5 s per holder.
    for (let n = 2; n <= 6; n++) {
      await sleep(400);
      holdAs(n);
    }
    await sleep(400);
    unlinkSync(lock);
    await writer;
    expect(done).toBe(true);
    expect(performance.now() - started).toBeGreaterThan(2_000);
    expect(existsSync(lock)).toBe(false);
  });

  it('the twin: gives up when one holder keeps it past the bound', async () => {
    holdAs(9);
    try {
      await expect(withFileLock(file, async () => true, 800)).rejects.toBeInstanceOf(LockTimeoutError);
    } finally {
      unlinkSync(lock);
    }
  });
});

// A process that follows the credential file (a running proxy) writes an update by the changed
// records' lines (store/file/follower.ts update(), follow-core.ts write()): the file it writes
// is byte for byte what the whole-file rewrite of the CLI writes, the feed has the change when
// update() resolves, a change another process made just before is kept, and anything the
// lines alone cannot say (a hand-written file, a reordered list, a file that changed under the
// reader) is written the whole-file way. The reader runs in this thread here (the test runner
// runs the sources); the built binary's worker runs the same code (test/integration/inventory-scale.test.ts).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Document } from 'yaml';
import { FileStore } from '../../src/store/file/file-store.js';
import { FollowCore } from '../../src/store/file/follow-core.js';
import { END_LINE, serializeStore } from '../../src/store/file/layout.js';
import { createAccount, deleteAccount, revokeToken } from '../../src/store/operations.js';
import type { StoreChange, StoreData, StoreFollower } from '../../src/store/types.js';
import { OP_CONFIG } from './redis-support.js';

const AT = '2026-05-01T10:00:00.000Z';
const ctx = () => ({ config: OP_CONFIG, now: new Date(AT) });
const tid = (i: number) => `tok_${i.toString(36).padStart(14, '0')}`;

function inventory(accounts: number, tokens: number): StoreData {
  const names = Array.from({ length: accounts }, (_, i) => `svc-${i}`);
  return {
    version: 1,
    accounts: names.map((name) => ({ name, description: '', owner: '', endDate: null, roles: [], scopes: [], policy: null, disabled: false, createdAt: AT, updatedAt: AT })),
    tokens: Array.from({ length: tokens }, (_, i) => ({ id: tid(i), account: names[i % accounts]!, label: `t${i}`, hash: i.toString(16).padStart(64, '0'), environment: null, scopes: null, policy: null, status: 'active' as const, createdAt: AT, expiresAt: null, revokedAt: null, revokeReason: null, rotatedFrom: null, rotatedTo: null })),
    certificates: [],
  };
}

let dir: string;
let file: string;
let followers: StoreFollower[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kg-lines-'));
  file = join(dir, 'credentials.yaml');
  followers = [];
});
afterEach(() => {
  for (const f of followers) f.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A store that follows the file, and every batch of changes its feed was told. */
async function following(): Promise<{ store: FileStore; told: StoreChange[][] }> {
  const store = new FileStore(file, { reader: 'thread' });
  const told: StoreChange[][] = [];
  await new Promise<void>((resolve) => followers.push(store.follow({ onSnapshot: () => resolve(), onChanges: (c) => void (c.length && told.push([...c])) })));
  return { store, told };
}

describe('an update in a process that follows the file', () => {
  it('writes what the whole-file rewrite writes, and the feed has the change when update() resolves', async () => {
    writeFileSync(file, serializeStore(inventory(20, 200)));
    const { store, told } = await following();
    const mutate = (d: StoreData) => {
      revokeToken(d, tid(7), 'test', ctx());
      createAccount(d, { name: 'new-svc' }, ctx());
      d.tokens.push({ ...d.tokens[3]!, id: 'tok_added000000000', label: 'added' });
      deleteAccount(d, 'svc-19', true, ctx());
    };
    const expected = inventory(20, 200);
    mutate(expected);
    await store.update(mutate);
    // Told at once (before any watcher saw the file): puts, then deletes with the account last.
    expect(told).toHaveLength(1);
    expect(told[0]!.map((c) => `${c.op} ${c.kind} ${c.op === 'delete' ? c.key : c.kind === 'account' ? c.record.name : c.record.id}`)).toEqual([
      'put account new-svc',
      `put token ${tid(7)}`,
      'put token tok_added000000000',
      ...inventory(20, 200).tokens.filter((t) => t.account === 'svc-19').map((t) => `delete token ${t.id}`),
      'delete account svc-19',
    ]);
    expect(readFileSync(file, 'utf8')).toBe(serializeStore(expected));
    expect(await new FileStore(file).read()).toEqual(expected);
  });

  it('keeps a change another process (the CLI) made just before', async () => {
    writeFileSync(file, serializeStore(inventory(5, 50)));
    const { store } = await following();
    const cli = new FileStore(file);
    await cli.update((d) => revokeToken(d, tid(1), 'by the CLI', ctx()));
    await store.update((d) => revokeToken(d, tid(2), 'by the admin API', ctx()));
    const data = await cli.read();
    expect(data.tokens.filter((t) => t.status === 'revoked').map((t) => t.id)).toEqual([tid(1), tid(2)]);
  });

  it('rewrites a hand-written file whole, in keygate layout', async () => {
    const data = inventory(3, 6);
    writeFileSync(file, new Document(data).toString());
    const { store, told } = await following();
    await store.update((d) => revokeToken(d, tid(4), 'test', ctx()));
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith('# keygate credential store')).toBe(true);
    expect(text.endsWith(`${END_LINE}\n`)).toBe(true);
    revokeToken(data, tid(4), 'test', ctx());
    expect(text).toBe(serializeStore(data));
    // The next one is written by its lines: told at once.
    const before = told.length;
    await store.update((d) => revokeToken(d, tid(5), 'test', ctx()));
    expect(told.length).toBe(before + 1);
  });

  it('a list put in another order is written in that order (the whole-file way)', async () => {
    const data = inventory(2, 5);
    writeFileSync(file, serializeStore(data));
    const { store } = await following();
    await store.update((d) => d.tokens.reverse());
    expect((await new FileStore(file).read()).tokens.map((t) => t.id)).toEqual(data.tokens.map((t) => t.id).reverse());
  });

  it('a mutation that throws writes nothing', async () => {
    writeFileSync(file, serializeStore(inventory(2, 5)));
    const before = readFileSync(file, 'utf8');
    const { store } = await following();
    await expect(
      store.update((d) => {
        revokeToken(d, tid(1), 'test', ctx());
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
});

describe('the reader writing changed lines', () => {
  it('writes nothing into a file that is no longer the version it holds', async () => {
    writeFileSync(file, serializeStore(inventory(2, 5)));
    const core = new FollowCore(file);
    const first = await core.read();
    if (first.kind !== 'snapshot') throw new Error(first.kind);
    expect(first.writable).toBe(true);
    const edited = serializeStore({ ...inventory(2, 5), tokens: inventory(2, 5).tokens.slice(1) });
    writeFileSync(file, edited);
    const change: StoreChange = { op: 'delete', kind: 'token', key: tid(2) };
    expect(await core.write(first.version, [change])).toEqual({ kind: 'stale' });
    expect(readFileSync(file, 'utf8')).toBe(edited);
    // Once it read the edit, a write into it lands (and an old version's write still does not).
    const next = await core.read();
    if (next.kind !== 'changes') throw new Error(next.kind);
    expect(await core.write(first.version, [change])).toEqual({ kind: 'stale' });
    expect(await core.write(next.version, [change])).toMatchObject({ kind: 'written' });
    expect((await new FileStore(file).read()).tokens.map((t) => t.id)).toEqual([tid(1), tid(3), tid(4)]);
  });
});

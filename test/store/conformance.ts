// The CredentialStore contract, written once and run against every backend (the file store and
// Redis): reads, atomic updates, concurrent writers in several instances, the change feed
// (snapshot first, then only what changed, also when another instance made the change), usage
// merge, close. Time that matters (expiry) comes from a clock the test moves, never from sleeping.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/harness.js';
import { applyChanges } from '../../src/store/diff.js';
import { createAccount, createToken, deleteToken, parseExpiry, revokeToken, tokenStatus, type OpContext } from '../../src/store/operations.js';
import type { CredentialStore, StoreChange, StoreData } from '../../src/store/types.js';
import { OP_CONFIG } from './redis-support.js';

export interface StoreHarness {
  /** A new, independent instance on the same backing store (as another process would open it). */
  open(): CredentialStore;
  cleanup(): Promise<void>;
}

/** A clock the test moves forward by hand. */
export class TestClock {
  constructor(public ms: number) {}
  advance(ms: number): void {
    this.ms += ms;
  }
  ctx(): OpContext {
    return { config: OP_CONFIG, now: new Date(this.ms) };
  }
}

interface Recorded {
  events: Array<{ type: 'snapshot'; data: StoreData; revision: number } | { type: 'changes'; changes: readonly StoreChange[]; revision: number }>;
  /** The inventory as a consumer applying the feed holds it. */
  state(): StoreData | undefined;
}

export function record(store: CredentialStore): Recorded & { stop: () => void } {
  const events: Recorded['events'] = [];
  let state: StoreData | undefined;
  const follower = store.follow({
    onSnapshot: (data, revision) => {
      events.push({ type: 'snapshot', data, revision });
      state = data;
    },
    onChanges: (changes, revision) => {
      events.push({ type: 'changes', changes, revision });
      if (state) state = applyChanges(state, changes);
    },
  });
  const stop = () => follower.stop();
  return { events, state: () => state, stop };
}

/** The inventory in key order: backends may list records in different orders. */
export function sorted(d: StoreData): StoreData {
  const by = <R>(key: (r: R) => string) => (a: R, b: R) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
  return { version: 1, accounts: [...d.accounts].sort(by((a) => a.name)), tokens: [...d.tokens].sort(by((t) => t.id)), certificates: [...d.certificates].sort(by((c) => c.id)) };
}

export function describeCredentialStore(name: string, setup: () => Promise<StoreHarness>): void {
  describe(`CredentialStore conformance: ${name}`, () => {
    let h: StoreHarness;
    const opened: CredentialStore[] = [];
    const open = () => {
      const s = h.open();
      opened.push(s);
      return s;
    };
    const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));

    beforeEach(async () => {
      h = await setup();
    });
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await h.cleanup();
    });

    it('reads an empty inventory before anything was written', async () => {
      const data = await open().read();
      expect(data).toEqual({ version: 1, accounts: [], tokens: [], certificates: [] });
    });

    it('update persists what the mutation did and returns its value; another instance reads it', async () => {
      const a = open();
      const created = await a.update((d) => createAccount(d, { name: 'alpha', owner: 'ops@example.com' }, clock.ctx()), { actor: 'test' });
      expect(created.name).toBe('alpha');
      const b = open();
      const seen = await b.read();
      expect(seen.accounts.map((x) => x.name)).toEqual(['alpha']);
      expect(seen.accounts[0]).toEqual(created);
      // Reads are copies: changing one changes nothing stored.
      seen.accounts[0]!.owner = 'changed@example.com';
      expect((await b.read()).accounts[0]!.owner).toBe('ops@example.com');
    });

    it('an update whose mutation throws writes nothing (and the next one lands)', async () => {
      const a = open();
      await a.update((d) => createAccount(d, { name: 'alpha' }, clock.ctx()));
      await expect(
        a.update((d) => {
          createAccount(d, { name: 'beta' }, clock.ctx());
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      expect((await open().read()).accounts.map((x) => x.name)).toEqual(['alpha']);
      await a.update((d) => createAccount(d, { name: 'gamma' }, clock.ctx()));
      expect((await open().read()).accounts.map((x) => x.name).sort()).toEqual(['alpha', 'gamma']);
    });

    it('concurrent updates from several instances all land', async () => {
      await open().update((d) => createAccount(d, { name: 'shared' }, clock.ctx()));
      const writers = Array.from({ length: 6 }, () => open());
      const ids = await Promise.all(writers.flatMap((w) => [1, 2, 3].map(() => w.update((d) => createToken(d, { account: 'shared' }, clock.ctx()).record.id))));
      expect(new Set(ids).size).toBe(18);
      const data = await open().read();
      expect(data.tokens.map((t) => t.id).sort()).toEqual([...ids].sort());
    });

    it('follow: a snapshot first, then only what changed, also when another instance changed it', async () => {
      const writer = open();
      await writer.update((d) => {
        for (let i = 0; i < 5; i++) createAccount(d, { name: `acct-${i}` }, clock.ctx());
      });
      const follower = open();
      const r = record(follower);
      await eventually(() => r.events.length >= 1, 5_000);
      expect(r.events[0]!.type).toBe('snapshot');
      expect(r.state()!.accounts).toHaveLength(5);
      const firstRevision = r.events[0]!.revision;

      const { record: token } = await writer.update((d) => createToken(d, { account: 'acct-3' }, clock.ctx()));
      await eventually(() => r.state()!.tokens.length === 1, 5_000);
      const put = r.events.filter((e) => e.type === 'changes').flatMap((e) => (e.type === 'changes' ? e.changes : []));
      // Only the new token, never the whole inventory.
      expect(put).toEqual([{ op: 'put', kind: 'token', record: token }]);

      await writer.update((d) => revokeToken(d, token.id, 'leaked', clock.ctx()));
      await eventually(() => r.state()!.tokens[0]?.status === 'revoked', 5_000);
      await writer.update((d) => deleteToken(d, token.id));
      await eventually(() => r.state()!.tokens.length === 0, 5_000);

      const revisions = r.events.map((e) => e.revision);
      expect(revisions[revisions.length - 1]!).toBeGreaterThan(firstRevision);
      for (let i = 1; i < revisions.length; i++) expect(revisions[i]!).toBeGreaterThanOrEqual(revisions[i - 1]!);
      for (const e of r.events.slice(1)) if (e.type === 'changes') expect(e.changes.length).toBe(1);
      expect(sorted(r.state()!)).toEqual(sorted(await writer.read()));
      r.stop();
    });

    it('after unsubscribing, a feed hears nothing more', async () => {
      const writer = open();
      await writer.update((d) => createAccount(d, { name: 'alpha' }, clock.ctx()));
      const r = record(open());
      await eventually(() => r.events.length >= 1, 5_000);
      r.stop();
      const before = r.events.length;
      await writer.update((d) => createAccount(d, { name: 'beta' }, clock.ctx()));
      // A second follower does see it: the change was there to be seen.
      const other = record(open());
      await eventually(() => other.state()?.accounts.length === 2, 5_000);
      expect(r.events.length).toBe(before);
      other.stop();
    });

    it('usage: merged from several instances, keeping the later time of each credential', async () => {
      const a = open();
      const b = open();
      await a.writeUsage({ tok_a: 1_000, tok_b: 5_000 });
      await b.writeUsage({ tok_a: 2_000, tok_b: 4_000, tok_c: 3_000 });
      await b.writeUsage({});
      expect(await open().readUsage()).toEqual({ tok_a: 2_000, tok_b: 5_000, tok_c: 3_000 });
    });

    it('expiry is data: a token reads back active, and expired once the clock passes its end', async () => {
      const s = open();
      await s.update((d) => createAccount(d, { name: 'alpha' }, clock.ctx()));
      const expiresAt = parseExpiry('1h', new Date(clock.ms));
      const { record: token } = await s.update((d) => createToken(d, { account: 'alpha', expiresAt }, clock.ctx()));
      const stored = (await open().read()).tokens.find((t) => t.id === token.id)!;
      expect(tokenStatus(stored, clock.ms)).toBe('active');
      clock.advance(60 * 60_000 - 1);
      expect(tokenStatus(stored, clock.ms)).toBe('active');
      clock.advance(1);
      expect(tokenStatus(stored, clock.ms)).toBe('expired');
    });

    it('close can be called twice', async () => {
      const s = open();
      await s.read();
      await s.close();
      await expect(s.close()).resolves.toBeUndefined();
    });
  });
}

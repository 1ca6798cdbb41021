// A replica's copy of the inventory: the changes an update's copy-on-write draft reports are
// exactly what diffStoreData says, for every kind of change an operation makes, the inventory's
// own records are never changed through a draft, and the draft touches only what changed.
import { describe, expect, it } from 'vitest';
import { diffStoreData } from '../../src/store/diff.js';
import { Draft } from '../../src/store/draft.js';
import { createAccount, createToken, deleteToken, findAccount, findToken, restoreToken, revokeToken, updateAccount } from '../../src/store/operations.js';
import { copies, Inventory } from '../../src/store/inventory.js';
import type { StoreData } from '../../src/store/types.js';
import { TestClock } from './conformance.js';

const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));

function inventoryOf(build: (d: StoreData) => void): Inventory {
  const d: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
  build(d);
  const inv = new Inventory(1, 'e', 'test');
  for (const a of d.accounts) inv.ingest('a', a.name, JSON.stringify(a));
  for (const t of d.tokens) inv.ingest('t', t.id, JSON.stringify(t));
  return inv.finish();
}

describe('Inventory', () => {
  const inv = inventoryOf((d) => {
    for (let i = 0; i < 5; i++) createAccount(d, { name: `a${i}`, roles: ['reader'] }, clock.ctx());
    for (let i = 0; i < 20; i++) createToken(d, { account: `a${i % 5}` }, clock.ctx());
  });
  const cases: Array<[string, (d: StoreData) => void]> = [
    ['nothing', () => undefined],
    ['a new account and token', (d) => (createAccount(d, { name: 'new' }, clock.ctx()), createToken(d, { account: 'new' }, clock.ctx()))],
    ['a revocation', (d) => revokeToken(d, d.tokens[7]!.id, 'x', clock.ctx())],
    ['a key changed in place', (d) => void (d.tokens[3]!.id = 'tok_renamed')],
    ['a deletion', (d) => deleteToken(d, d.tokens[3]!.id)],
    ['an account change', (d) => updateAccount(d, 'a2', { description: 'changed', roles: [] }, clock.ctx())],
    ['a nested array changed in place', (d) => d.accounts[1]!.scopes.push('things:read')],
    ['an account removed with its tokens', (d) => ((d.tokens = d.tokens.filter((t) => t.account !== 'a4')), (d.accounts = d.accounts.filter((a) => a.name !== 'a4')))],
    ['a record replaced by an identical copy', (d) => (d.tokens[2] = JSON.parse(JSON.stringify(d.tokens[2])) as StoreData['tokens'][number])],
    ['a record replaced by a changed copy', (d) => (d.tokens[2] = { ...d.tokens[2]!, label: 'other' })],
    ['a field written with the value it had', (d) => (d.tokens[4]!.label = d.tokens[4]!.label)],
    ['an account renamed (its key changes)', (d) => (d.accounts[0]!.name = 'renamed')],
    ['a field deleted', (d) => delete (d.tokens[5] as unknown as Record<string, unknown>).rotatedTo],
    ['every list replaced by a new one', (d) => ((d.accounts = [...d.accounts]), (d.tokens = d.tokens.slice(1)), (d.certificates = []))],
  ];
  for (const [name, change] of cases) {
    it(`diff of ${name} is diffStoreData's`, () => {
      const base = inv.view();
      const frozen = JSON.stringify(base);
      const draft = inv.draft();
      change(draft.data);
      const expected = JSON.parse(JSON.stringify(diffStoreData(base, draft.data))) as unknown;
      expect(draft.changes().map((c) => c.change)).toEqual(expected);
      // The draft was changed, the inventory was not.
      expect(JSON.stringify(inv.view())).toBe(frozen);
    });
  }
});

describe('a draft costs what it changes', () => {
  const inv = inventoryOf((d) => {
    for (let i = 0; i < 5; i++) createAccount(d, { name: `a${i}` }, clock.ctx());
    for (let i = 0; i < 2_000; i++) createToken(d, { account: `a${i % 5}` }, clock.ctx());
  });

  it('a revocation among 2,000 tokens copies, serializes and compares one record', () => {
    const before = copies.count;
    const draft = inv.draft();
    revokeToken(draft.data, draft.data.tokens[1_234]!.id, 'x', clock.ctx());
    const changes = draft.changes();
    expect(changes.map((c) => [c.change.op, c.key])).toEqual([['put', inv.view().tokens[1_234]!.id]]);
    expect(draft.cost).toEqual({ materialized: 1, compared: 1 });
    expect(copies.count - before).toBe(1);
  });

  it('tells a revocation among 2,000 tokens by the record touched: keepsOrder() and changes() look at no other', () => {
    const draft = inv.draft();
    revokeToken(draft.data, draft.data.tokens[1_500]!.id, 'x', clock.ctx());
    expect(draft.keepsOrder()).toBe(true);
    expect(draft.changes().map((c) => c.key)).toEqual([draft.data.tokens[1_500]!.id]);
    // Before, both walked every record of every list (2 × 2,000 and more).
    expect(draft.visited).toBe(1);
  });

  it('reading every record (a search by label) copies none of them', () => {
    const before = copies.count;
    const draft = inv.draft();
    expect(draft.data.tokens.filter((t) => t.label === 'none')).toHaveLength(0);
    expect(draft.changes()).toEqual([]);
    expect(draft.cost.materialized).toBe(0);
    expect(copies.count - before).toBe(0);
  });

  it("the inventory's records are frozen, and writes through a draft (fields, lists in place) never reach them", () => {
    const before = JSON.stringify(inv.view());
    expect(Object.isFrozen(inv.view().tokens[0])).toBe(true);
    expect(Object.isFrozen(inv.view().accounts[0]!.roles)).toBe(true);
    const draft = inv.draft();
    const t = draft.data.tokens[0]!;
    t.status = 'revoked';
    t.revokeReason = 'x';
    draft.data.accounts[0]!.roles.push('reader');
    expect(JSON.stringify(inv.view())).toBe(before);
    // The draft itself reads its own writes.
    expect(t.status).toBe('revoked');
    expect(draft.data.accounts[0]!.roles).toEqual(['reader']);
  });

  it('a record of an earlier draft is taken for a new one, not for the base it came from', () => {
    const stale = inv.draft().data.tokens[0]!;
    const draft = inv.draft();
    draft.data.tokens[0] = stale;
    expect(draft.changes()).toEqual([]);
    draft.data.tokens.push({ ...stale, id: 'tok_new1' });
    expect(draft.changes().map((c) => c.key)).toEqual(['tok_new1']);
  });

  it('refuses a list that is not a list, or an item that is not a record', () => {
    const draft = inv.draft();
    (draft.data as unknown as Record<string, unknown>).tokens = 'nope';
    expect(() => draft.changes()).toThrow(/data.tokens is not a list/);
    const other = inv.draft();
    (other.data.tokens as unknown[]).push(7);
    expect(() => other.changes()).toThrow(/not a record/);
  });
});

describe("a draft's lookup (findToken, findAccount without a scan)", () => {
  const inv = inventoryOf((d) => {
    for (let i = 0; i < 3; i++) createAccount(d, { name: `a${i}` }, clock.ctx());
    for (let i = 0; i < 30; i++) createToken(d, { account: `a${i % 3}` }, clock.ctx());
  });

  it('finds the record the scan would find, and only while it is still listed', () => {
    const draft = inv.draft();
    const id = draft.data.tokens[17]!.id;
    expect(findToken(draft.data, id)).toBe(draft.data.tokens[17]);
    expect(findAccount(draft.data, 'a1')).toBe(draft.data.accounts[1]);
    draft.data.tokens = draft.data.tokens.filter((t) => t.id !== id);
    expect(() => findToken(draft.data, id)).toThrow(/no token/);
    // A record renamed in the draft is no longer found under its old key.
    draft.data.accounts[1]!.name = 'other';
    expect(() => findAccount(draft.data, 'a1')).toThrow(/no account/);
  });

  it('stays right after records were removed and added (places shift)', () => {
    const view = inv.view();
    inv.applyOwn([{ op: 'delete', kind: 'token', key: view.tokens[3]!.id }]);
    const added = { ...view.tokens[0]!, id: 'tok_added1', hash: 'f'.repeat(64) };
    inv.applyOwn([{ op: 'put', kind: 'token', record: added }]);
    const draft = inv.draft();
    for (const t of inv.view().tokens) expect(findToken(draft.data, t.id).id).toBe(t.id);
    expect(() => findToken(draft.data, view.tokens[3]!.id)).toThrow(/no token/);
  });
});

describe('drafts made by Draft.build() keep their views from one to the next (the file store\'s admin API)', () => {
  const fresh = () =>
    inventoryOf((d) => {
      for (let i = 0; i < 5; i++) createAccount(d, { name: `a${i}` }, clock.ctx());
      for (let i = 0; i < 2_000; i++) createToken(d, { account: `a${i % 5}` }, clock.ctx());
    });
  let pauses = 0;
  const pause = async () => void pauses++;

  it('the second draft makes no views: it costs the record it changes, and sees the first one\'s change', async () => {
    const inv = fresh();
    const id = inv.view().tokens[1_234]!.id;
    pauses = 0;
    const first = await Draft.build(inv, pause, 100);
    // 2,005 views made 100 at a time (and the lookup's places).
    expect(pauses).toBeGreaterThanOrEqual(20);
    revokeToken(first.data, id, 'x', clock.ctx());
    const changes = first.changes().map((c) => c.change);
    first.release();
    inv.applyOwn(changes);

    pauses = 0;
    const before = copies.count;
    const second = await Draft.build(inv, pause, 100);
    // Before, every draft made all 2,005 views again, 100 at a time.
    expect(pauses).toBe(0);
    restoreToken(second.data, id, clock.ctx());
    expect(second.keepsOrder()).toBe(true);
    expect(second.changes().map((c) => [c.change.op, c.key])).toEqual([['put', id]]);
    expect(second.visited).toBe(1);
    expect(copies.count - before).toBe(1);
    second.release();
  });

  it("an earlier draft's records keep their values when a later draft changes the same records", async () => {
    const inv = fresh();
    const id = inv.view().tokens[7]!.id;
    const first = await Draft.build(inv, pause);
    const revoked = revokeToken(first.data, id, 'x', clock.ctx());
    const looked = findAccount(first.data, 'a1'); // handed out, not changed (a result, say)
    first.changes();
    first.release(); // not committed: the inventory still has the token active
    const second = await Draft.build(inv, pause);
    expect(findToken(second.data, id).status).toBe('active');
    updateAccount(second.data, 'a1', { description: 'later' }, clock.ctx());
    findToken(second.data, id).label = 'later';
    expect(revoked.status).toBe('revoked');
    expect(revoked.label).not.toBe('later');
    expect(looked.description).not.toBe('later');
    // A record of the earlier draft put into the later one is taken for what it says, not for its base.
    second.data.tokens.push({ ...revoked, id: 'tok_fromfirst' });
    expect(second.changes().map((c) => c.key).sort()).toEqual(['a1', id, 'tok_fromfirst'].sort());
    second.release();
  });

  it('the views follow the inventory: a replaced or added record has its own, a removal makes them again', async () => {
    const inv = fresh();
    const view = inv.view();
    (await Draft.build(inv, pause)).release();
    const added = { ...view.tokens[0]!, id: 'tok_added1', hash: 'f'.repeat(64) };
    inv.applyOwn([{ op: 'put', kind: 'token', record: { ...view.tokens[3]!, label: 'replaced' } }, { op: 'put', kind: 'token', record: added }]);
    pauses = 0;
    let d = await Draft.build(inv, pause, 100);
    expect(pauses).toBe(0);
    expect(d.data.tokens[3]!.label).toBe('replaced');
    expect(d.data.tokens.at(-1)!.id).toBe('tok_added1');
    expect(findToken(d.data, 'tok_added1').id).toBe('tok_added1');
    expect(d.changes()).toEqual([]);
    d.release();
    inv.applyOwn([{ op: 'delete', kind: 'token', key: view.tokens[3]!.id }]);
    d = await Draft.build(inv, pause, 100);
    expect(pauses).toBeGreaterThanOrEqual(20);
    expect(d.data.tokens.map((t) => t.id)).toEqual(inv.view().tokens.map((t) => t.id));
    for (const t of inv.view().tokens.slice(0, 50)) expect(findToken(d.data, t.id).id).toBe(t.id);
    d.release();
  });
});

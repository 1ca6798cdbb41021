// A replica's copy of the inventory: its fast diff says exactly what diffStoreData says, for
// every kind of change an operation makes, and a copy can be changed without touching it.
import { describe, expect, it } from 'vitest';
import { diffStoreData } from '../../src/store/diff.js';
import { createAccount, createToken, deleteToken, revokeToken, updateAccount } from '../../src/store/operations.js';
import { emptyRaw, Inventory } from '../../src/store/redis/inventory.js';
import type { StoreData } from '../../src/store/types.js';
import { TestClock } from './conformance.js';

const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));

function inventoryOf(build: (d: StoreData) => void): Inventory {
  const d: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
  build(d);
  const raw = emptyRaw();
  for (const a of d.accounts) raw.a.set(a.name, JSON.stringify(a));
  for (const t of d.tokens) raw.t.set(t.id, JSON.stringify(t));
  return Inventory.fromRaw(raw, 1, 'e', 'test');
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
    ['a deletion', (d) => deleteToken(d, d.tokens[3]!.id)],
    ['an account change', (d) => updateAccount(d, 'a2', { description: 'changed', roles: [] }, clock.ctx())],
    ['a nested array changed in place', (d) => d.accounts[1]!.scopes.push('things:read')],
    ['an account removed with its tokens', (d) => ((d.tokens = d.tokens.filter((t) => t.account !== 'a4')), (d.accounts = d.accounts.filter((a) => a.name !== 'a4')))],
  ];
  for (const [name, change] of cases) {
    it(`diff of ${name} is diffStoreData's`, () => {
      const base = inv.view();
      const frozen = JSON.stringify(base);
      const draft = inv.copy();
      change(draft);
      expect(inv.diff(draft)).toEqual(diffStoreData(base, draft));
      // The copy was changed, the inventory was not.
      expect(JSON.stringify(inv.view())).toBe(frozen);
    });
  }
});

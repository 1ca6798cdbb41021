// Changes between two versions of the inventory, and the inverse: applying changes to a copy.
// Shared by every backend, so that "what changed" means the same thing for the file store (a
// re-read file compared with the last one) and for Redis (the change log of each update).
import { isDeepStrictEqual } from 'node:util';
import type { AccountRecord, CertBindingRecord, StoreChange, StoreData, TokenRecord } from './types.js';

type Keyed<R> = { kind: 'account' | 'token' | 'certificate'; key: (r: R) => string; list: (d: StoreData) => R[] };

const ACCOUNTS: Keyed<AccountRecord> = { kind: 'account', key: (a) => a.name, list: (d) => d.accounts };
const TOKENS: Keyed<TokenRecord> = { kind: 'token', key: (t) => t.id, list: (d) => d.tokens };
const CERTS: Keyed<CertBindingRecord> = { kind: 'certificate', key: (c) => c.id, list: (d) => d.certificates };

function diffList<R>(k: Keyed<R>, prev: StoreData, next: StoreData, out: StoreChange[]): void {
  const before = new Map(k.list(prev).map((r) => [k.key(r), r]));
  const after = new Set<string>();
  for (const r of k.list(next)) {
    const key = k.key(r);
    after.add(key);
    const old = before.get(key);
    if (old === undefined || !isDeepStrictEqual(old, r)) out.push({ op: 'put', kind: k.kind, record: r } as StoreChange);
  }
  for (const key of before.keys()) if (!after.has(key)) out.push({ op: 'delete', kind: k.kind, key });
}

/**
 * What turns `prev` into `next`: puts for new or changed records, deletes for removed ones.
 * Accounts come first among puts and last among deletes, so that applying the changes in order
 * never leaves a credential pointing at an account that does not exist (yet, or any more).
 */
export function diffStoreData(prev: StoreData, next: StoreData): StoreChange[] {
  const changes: StoreChange[] = [];
  diffList(ACCOUNTS, prev, next, changes);
  diffList(TOKENS, prev, next, changes);
  diffList(CERTS, prev, next, changes);
  const rank = (c: StoreChange) => (c.op === 'put' ? (c.kind === 'account' ? 0 : 1) : c.kind === 'account' ? 3 : 2);
  return changes.sort((a, b) => rank(a) - rank(b));
}

/** A copy of `data` with `changes` applied in order (a put replaces the record with the same key). */
export function applyChanges(data: StoreData, changes: readonly StoreChange[]): StoreData {
  const accounts = new Map(data.accounts.map((a) => [a.name, a]));
  const tokens = new Map(data.tokens.map((t) => [t.id, t]));
  const certificates = new Map(data.certificates.map((c) => [c.id, c]));
  for (const c of changes) {
    const map: Map<string, unknown> = c.kind === 'account' ? accounts : c.kind === 'token' ? tokens : certificates;
    if (c.op === 'delete') map.delete(c.key);
    else map.set(c.kind === 'account' ? c.record.name : c.record.id, c.record);
  }
  return { version: 1, accounts: [...accounts.values()], tokens: [...tokens.values()], certificates: [...certificates.values()] };
}

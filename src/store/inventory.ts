// A copy of the inventory at one revision, shared by both stores: a Redis replica's records by
// key, validated as they come from Redis, and the records a file store's follower delivered
// (store/file/follower.ts), the base of its admin API's drafts. Changes are applied record by record (cost proportional to the change), and a
// record that does not validate (a hand edit in redis-cli) is left out and reported: a token
// that cannot be read admits no one.
//
// The records are frozen and shared: the same objects serve the store's own copy, what the
// feeds are given (runtime/credential-index.ts keeps them) and the base of every update's draft
// (draft.ts), so that 100,000 credentials are held once, not once per holder. Whoever wants to
// change one gets a copy (copy(), or the draft's copy-on-write).
import { storeSchema } from './schema.js';
import type { AccountRecord, CertBindingRecord, StoreChange, StoreData, StoreProblem, TokenRecord } from './types.js';
import { Draft, type DraftViews } from './draft.js';
import { isCompleteRecord } from './record-check.js';

export type AnyRecord = AccountRecord | TokenRecord | CertBindingRecord;

/** A record kind in one letter (also the Redis store's field prefixes, store/redis/keys.ts). */
export type KindCode = 'a' | 't' | 'c';

export const LIST: Record<KindCode, 'accounts' | 'tokens' | 'certificates'> = { a: 'accounts', t: 'tokens', c: 'certificates' };
export const KIND: Record<KindCode, StoreChange['kind']> = { a: 'account', t: 'token', c: 'certificate' };

export function keyOf(kind: StoreChange['kind'], record: AnyRecord): string {
  return kind === 'account' ? (record as AccountRecord).name : (record as TokenRecord).id;
}

/** Freezes a record and its lists (records are flat: fields and arrays of strings). */
export function freezeRecord<R extends object>(r: R): R {
  for (const k in r) if (Array.isArray(r[k])) Object.freeze(r[k]);
  return Object.freeze(r);
}

export class Inventory {
  readonly accounts = new Map<string, AccountRecord>();
  readonly tokens = new Map<string, TokenRecord>();
  readonly certificates = new Map<string, CertBindingRecord>();
  /** Records left out, by "kind:key". */
  readonly problems = new Map<string, StoreProblem>();

  constructor(
    public revision: number,
    public epoch: string,
    private readonly where: string,
  ) {}

  /**
   * One hash field of a snapshot scan, taken in as it arrives (so that the scan never holds the
   * whole inventory as text beside the parsed records).
   */
  ingest(code: KindCode, key: string, json: string): void {
    let value: unknown;
    try {
      value = JSON.parse(json) as unknown;
    } catch {
      this.remove(code, key);
      this.problem(code, key, 'not valid JSON');
      return;
    }
    this.take(code, key, value);
  }

  /**
   * The end of a snapshot: records in creation order (then key). Hash order is Redis's own;
   * creation order keeps listings stable and familiar. Compared as strings, not with
   * localeCompare, which at 100,000 records cost more than reading them.
   */
  finish(): this {
    const order = <R extends AnyRecord>(map: Map<string, R>, key: (r: R) => string) => {
      const list = [...map.values()];
      list.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
      map.clear();
      for (const r of list) map.set(key(r), r);
    };
    // Every record was stored under its own key (validate() sees to that).
    order(this.accounts, (a) => a.name);
    order(this.tokens, (t) => t.id);
    order(this.certificates, (c) => c.id);
    this.positions = { a: undefined, t: undefined, c: undefined };
    this.views = undefined;
    return this;
  }

  /**
   * Applies one log entry's raw changes; returns them as StoreChanges (an invalid put becomes a
   * delete of whatever was there, so that a bad write fails closed).
   */
  applyRaw(changes: ReadonlyArray<readonly [KindCode, string, unknown]>, rejected: StoreProblem[] = []): StoreChange[] {
    const out: StoreChange[] = [];
    for (const [code, key, value] of changes) {
      const map = this.mapOf(code);
      if (value === null) {
        this.problems.delete(`${code}:${key}`);
        if (this.remove(code, key)) out.push({ op: 'delete', kind: KIND[code], key });
        continue;
      }
      const had = map.has(key);
      const record = this.take(code, key, value);
      if (record === undefined) {
        rejected.push(this.problems.get(`${code}:${key}`)!);
        if (had) out.push({ op: 'delete', kind: KIND[code], key });
        continue;
      }
      out.push({ op: 'put', kind: KIND[code], record } as StoreChange);
    }
    return out;
  }

  /** Applies changes this process committed (records already frozen, as draft.ts makes them). */
  applyOwn(changes: readonly StoreChange[]): void {
    for (const c of changes) {
      const code = c.kind === 'account' ? 'a' : c.kind === 'token' ? 't' : 'c';
      if (c.op === 'delete') this.remove(code, c.key);
      else this.put(code, keyOf(c.kind, c.record), c.record);
    }
  }

  /** The records as StoreData, sharing the (frozen) record objects. */
  view(): StoreData {
    return { version: 1, accounts: [...this.accounts.values()], tokens: [...this.tokens.values()], certificates: [...this.certificates.values()] };
  }

  /** A copy the caller may change (records are flat: fields and arrays of strings). */
  copy(): StoreData {
    return { version: 1, accounts: [...this.accounts.values()].map(copyRecord), tokens: [...this.tokens.values()].map(copyRecord), certificates: [...this.certificates.values()].map(copyRecord) };
  }

  /** A copy-on-write draft of this revision for one update (draft.ts). */
  draft(): Draft {
    return new Draft(this);
  }

  get size(): number {
    return this.accounts.size + this.tokens.size + this.certificates.size;
  }

  /**
   * The place of `key` in its map's order (the order a draft lists the records in), so that a
   * draft finds a record without a scan. Built on first use and kept while records are only
   * replaced or added (a Map keeps a replaced key's place and appends a new one); a removal
   * shifts the places after it, so the next use builds it again.
   */
  positionOf(code: KindCode, key: string): number | undefined {
    let positions = this.positions[code];
    if (positions === undefined) {
      positions = this.positions[code] = new Map();
      for (const k of this.mapOf(code).keys()) positions.set(k, positions.size);
    }
    return positions.get(key);
  }

  private positions: Record<KindCode, Map<string, number> | undefined> = { a: undefined, t: undefined, c: undefined };

  /**
   * The views Draft.build() keeps from one draft to the next (draft.ts DraftViews), in this
   * inventory's order: put() gives a replaced or added record its view, a removal (places
   * shift) or a reordering drops them.
   */
  views: DraftViews | undefined;

  private put(code: KindCode, key: string, record: AnyRecord): void {
    const map = this.mapOf(code);
    const positions = this.positions[code];
    if (positions !== undefined && !map.has(key)) positions.set(key, map.size);
    map.set(key, record);
    if (this.views) this.views.replace(code, this.positionOf(code, key)!, key, record);
  }

  private remove(code: KindCode, key: string): boolean {
    const removed = this.mapOf(code).delete(key);
    if (removed) {
      this.positions[code] = undefined;
      this.views = undefined;
    }
    return removed;
  }

  mapOf(code: KindCode): Map<string, AnyRecord> {
    return (code === 'a' ? this.accounts : code === 't' ? this.tokens : this.certificates) as Map<string, AnyRecord>;
  }

  /** Validates and stores one record (or drops what was under `key` and records the problem). */
  private take(code: KindCode, key: string, value: unknown): AnyRecord | undefined {
    const record = this.validate(code, key, value);
    if (record === undefined) {
      this.remove(code, key);
      return undefined;
    }
    if (this.problems.size > 0) this.problems.delete(`${code}:${key}`);
    this.put(code, key, record);
    return record;
  }

  /** The fast check first (record-check.ts), zod for anything else. */
  private validate(code: KindCode, key: string, value: unknown): AnyRecord | undefined {
    let record: AnyRecord;
    if (isCompleteRecord(code, value)) record = value as AnyRecord;
    else {
      const list = LIST[code];
      const result = storeSchema.safeParse({ version: 1, [list]: [value] });
      if (!result.success) {
        this.problem(code, key, result.error.issues.map((i) => `${i.path.slice(2).join('.') || 'record'}: ${i.message}`).join('; '));
        return undefined;
      }
      record = (result.data[list] as AnyRecord[])[0]!;
    }
    if (keyOf(KIND[code], record) !== key) {
      this.problem(code, key, `the record's own key is "${keyOf(KIND[code], record)}"`);
      return undefined;
    }
    return freezeRecord(record);
  }

  private problem(code: KindCode, key: string, message: string): void {
    this.problems.set(`${code}:${key}`, { file: `${this.where} ${LIST[code]}[${key}]`, line: 1, col: 1, message });
  }
}

/** Counts record copies, so that a test can tell an update that copied the inventory (store.ts lastUpdate). */
export const copies = { count: 0 };

export function copyRecord<R extends object>(r: R): R {
  copies.count++;
  const out = { ...r } as Record<string, unknown>;
  for (const k in out) if (Array.isArray(out[k])) out[k] = [...(out[k] as unknown[])];
  return out as R;
}

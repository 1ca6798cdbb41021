// A replica's copy of the inventory at one revision: the records by key, validated as they come
// from Redis. Changes are applied record by record (cost proportional to the change), and a
// record that does not validate (a hand edit in redis-cli) is left out and reported: a token
// that cannot be read admits no one.
import { diffStoreData } from '../diff.js';
import { storeSchema } from '../schema.js';
import type { AccountRecord, CertBindingRecord, StoreChange, StoreData, StoreProblem, TokenRecord } from '../types.js';
import type { KindCode } from './keys.js';

type AnyRecord = AccountRecord | TokenRecord | CertBindingRecord;

const LIST: Record<KindCode, 'accounts' | 'tokens' | 'certificates'> = { a: 'accounts', t: 'tokens', c: 'certificates' };
const KIND: Record<KindCode, StoreChange['kind']> = { a: 'account', t: 'token', c: 'certificate' };

export interface RawRecords {
  a: Map<string, string>;
  t: Map<string, string>;
  c: Map<string, string>;
}

export function emptyRaw(): RawRecords {
  return { a: new Map(), t: new Map(), c: new Map() };
}

export function keyOf(kind: StoreChange['kind'], record: AnyRecord): string {
  return kind === 'account' ? (record as AccountRecord).name : (record as TokenRecord).id;
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

  /** Builds an inventory from raw hash contents (a snapshot). */
  static fromRaw(raw: RawRecords, revision: number, epoch: string, where: string): Inventory {
    const inv = new Inventory(revision, epoch, where);
    const parsed: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
    const keys: Record<KindCode, string[]> = { a: [], t: [], c: [] };
    for (const code of ['a', 't', 'c'] as const) {
      for (const [key, json] of raw[code]) {
        const value = inv.parseJson(code, key, json);
        if (value === undefined) continue;
        (parsed[LIST[code]] as unknown[]).push(value);
        keys[code].push(key);
      }
    }
    // One validation of everything (fast path); on failure, find and drop the bad records.
    const result = storeSchema.safeParse(parsed);
    let data: StoreData;
    if (result.success) data = result.data;
    else {
      const bad = new Map<string, { code: KindCode; key: string; messages: string[] }>();
      for (const issue of result.error.issues) {
        const [list, index] = issue.path;
        const code = (Object.keys(LIST) as KindCode[]).find((c) => LIST[c] === list);
        if (code === undefined || typeof index !== 'number') continue;
        const id = `${code}:${index}`;
        if (!bad.has(id)) bad.set(id, { code, key: keys[code][index]!, messages: [] });
        bad.get(id)!.messages.push(`${issue.path.slice(2).join('.') || 'record'}: ${issue.message}`);
      }
      for (const b of bad.values()) inv.problem(b.code, b.key, b.messages.join('; '));
      const keep = <T>(code: KindCode, list: T[]) => list.filter((_, i) => !bad.has(`${code}:${i}`));
      for (const code of ['a', 't', 'c'] as const) keys[code] = keep(code, keys[code]);
      data = storeSchema.parse({ version: 1, accounts: keep('a', parsed.accounts), tokens: keep('t', parsed.tokens), certificates: keep('c', parsed.certificates) });
    }
    const put = <R extends AnyRecord>(code: KindCode, list: R[], map: Map<string, R>) =>
      list.forEach((r, i) => {
        const key = keys[code][i]!;
        if (keyOf(KIND[code], r) === key) map.set(key, r);
        else inv.problem(code, key, `the record's own key is "${keyOf(KIND[code], r)}"`);
      });
    // Hash order is Redis's own; creation order (then key) keeps listings stable and familiar.
    const byCreation = <R extends AnyRecord>(code: KindCode, list: R[]) => {
      const order = list.map((r, i) => i).sort((x, y) => list[x]!.createdAt.localeCompare(list[y]!.createdAt) || (keys[code][x]! < keys[code][y]! ? -1 : 1));
      keys[code] = order.map((i) => keys[code][i]!);
      return order.map((i) => list[i]!);
    };
    data = { version: 1, accounts: byCreation('a', data.accounts), tokens: byCreation('t', data.tokens), certificates: byCreation('c', data.certificates) };
    put('a', data.accounts, inv.accounts);
    put('t', data.tokens, inv.tokens);
    put('c', data.certificates, inv.certificates);
    return inv;
  }

  /**
   * Applies one log entry's raw changes; returns them as StoreChanges (an invalid put becomes a
   * delete of whatever was there, so that a bad write fails closed).
   */
  applyRaw(changes: ReadonlyArray<readonly [KindCode, string, unknown]>, rejected: StoreProblem[] = []): StoreChange[] {
    const out: StoreChange[] = [];
    for (const [code, key, json] of changes) {
      const map = this.mapOf(code);
      const pkey = `${code}:${key}`;
      if (json === null) {
        this.problems.delete(pkey);
        if (map.delete(key)) out.push({ op: 'delete', kind: KIND[code], key });
        continue;
      }
      const record = this.validateOne(code, key, json);
      if (record === undefined) {
        rejected.push(this.problems.get(pkey)!);
        if (map.delete(key)) out.push({ op: 'delete', kind: KIND[code], key });
        continue;
      }
      this.problems.delete(pkey);
      map.set(key, record);
      out.push({ op: 'put', kind: KIND[code], record } as StoreChange);
    }
    return out;
  }

  /** Applies changes this process committed (already valid records). */
  applyOwn(changes: readonly StoreChange[]): void {
    for (const c of changes) {
      const code = c.kind === 'account' ? 'a' : c.kind === 'token' ? 't' : 'c';
      const map = this.mapOf(code);
      if (c.op === 'delete') map.delete(c.key);
      else map.set(keyOf(c.kind, c.record), c.record);
    }
  }

  /** The records as StoreData, sharing the record objects (read-only use). */
  view(): StoreData {
    return { version: 1, accounts: [...this.accounts.values()], tokens: [...this.tokens.values()], certificates: [...this.certificates.values()] };
  }

  /** A copy the caller may change (records are flat: fields and arrays of strings). */
  copy(): StoreData {
    return { version: 1, accounts: [...this.accounts.values()].map(copyRecord), tokens: [...this.tokens.values()].map(copyRecord), certificates: [...this.certificates.values()].map(copyRecord) };
  }

  /**
   * What turns this inventory into `draft` (a changed copy()), as diffStoreData says it: a cheap
   * field-by-field pass finds the few records that can differ, and diffStoreData decides on
   * those alone, so that one token created in an inventory of 100,000 does not cost 100,000
   * deep comparisons. Synchronous: nothing changes the maps meanwhile.
   */
  diff(draft: StoreData): StoreChange[] {
    const prev: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
    const next: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
    const pick = <R extends AnyRecord>(kind: StoreChange['kind'], map: Map<string, R>, list: R[], into: (d: StoreData) => R[]) => {
      const seen = new Set<string>();
      for (const r of list) {
        const key = keyOf(kind, r);
        seen.add(key);
        const old = map.get(key);
        if (old === undefined || !sameRecord(old, r)) {
          into(next).push(r);
          if (old !== undefined) into(prev).push(old);
        }
      }
      for (const [key, old] of map) if (!seen.has(key)) into(prev).push(old);
    };
    pick('account', this.accounts, draft.accounts, (d) => d.accounts);
    pick('token', this.tokens, draft.tokens, (d) => d.tokens);
    pick('certificate', this.certificates, draft.certificates, (d) => d.certificates);
    return diffStoreData(prev, next);
  }

  get size(): number {
    return this.accounts.size + this.tokens.size + this.certificates.size;
  }

  private mapOf(code: KindCode): Map<string, AnyRecord> {
    return (code === 'a' ? this.accounts : code === 't' ? this.tokens : this.certificates) as Map<string, AnyRecord>;
  }

  private parseJson(code: KindCode, key: string, json: string): unknown {
    try {
      return JSON.parse(json) as unknown;
    } catch {
      this.problem(code, key, 'not valid JSON');
      return undefined;
    }
  }

  private validateOne(code: KindCode, key: string, value: unknown): AnyRecord | undefined {
    const list = LIST[code];
    const result = storeSchema.safeParse({ version: 1, [list]: [value] });
    if (!result.success) {
      this.problem(code, key, result.error.issues.map((i) => `${i.path.slice(2).join('.') || 'record'}: ${i.message}`).join('; '));
      return undefined;
    }
    const record = (result.data[list] as AnyRecord[])[0]!;
    if (keyOf(KIND[code], record) !== key) {
      this.problem(code, key, `the record's own key is "${keyOf(KIND[code], record)}"`);
      return undefined;
    }
    return record;
  }

  private problem(code: KindCode, key: string, message: string): void {
    this.problems.set(`${code}:${key}`, { file: `${this.where} ${LIST[code]}[${key}]`, line: 1, col: 1, message });
  }
}

function copyRecord<R extends object>(r: R): R {
  const out = { ...r } as Record<string, unknown>;
  for (const k in out) if (Array.isArray(out[k])) out[k] = [...(out[k] as unknown[])];
  return out as R;
}

/** Same fields with the same values; arrays compared element by element (records are flat). */
function sameRecord(a: object, b: object): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = (a as Record<string, unknown>)[k];
    const y = (b as Record<string, unknown>)[k];
    if (x === y) continue;
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

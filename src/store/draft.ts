// The data an update's mutation works on, and what it changed — without copying or comparing
// the whole inventory. CredentialStore.update hands `mutate` a StoreData it may change freely
// (the lifecycle operations of store/operations.ts set fields on records, push new ones,
// filter lists). At 100,000 credentials, a full copy before and a record-by-record comparison
// after cost ~0.1–0.45 s and ~100 MB of garbage per write, for a change of one record.
//
// Here every record of the draft is a copy-on-write view of the inventory's frozen record: it
// reads through to the record until something writes to it (or takes one of its lists, which
// the caller might change in place), and only then gets a copy of its own. After the mutation,
// one pass over the lists tells the untouched records apart by identity (a pointer check each);
// only the records that were written to, added or left out are serialized and compared. The
// lists are plain arrays, so find/filter/push work as everywhere else, and the shared records
// can never be changed through a draft: the inventory stays as Redis has it if the commit is
// refused and the mutation runs again on newer data.
import { RECORD_LOOKUP, type RecordLookup } from './operations.js';
import type { StoreChange, StoreData } from './types.js';
import { copyRecord, freezeRecord, KIND, keyOf, LIST, type AnyRecord, type KindCode } from './inventory.js';

const SLOT = Symbol('keygate.draftSlot');

/** One record of a draft: the shared base, and a copy once anything may have changed it. */
class Slot {
  copy: Record<string | symbol, unknown> | undefined = undefined;
  seen = false;
  constructor(
    readonly owner: Draft,
    readonly base: Readonly<Record<string | symbol, unknown>>,
    readonly key: string,
    /** Its place in the list the draft was handed out with. */
    readonly index: number,
    /** The slots given a copy, in the order they got it (the draft's, for its list). */
    private readonly touched: Slot[],
  ) {}

  writable(): Record<string | symbol, unknown> {
    if (this.copy === undefined) {
      this.copy = copyRecord(this.base as object) as Record<string | symbol, unknown>;
      this.touched.push(this);
    }
    return this.copy;
  }
}

// The proxy's target is the slot; every trap answers for the record the slot stands for (its
// copy once there is one). Descriptors are reported configurable, which the Proxy invariants
// allow for an extensible target, and the prototype is that of a plain object, so that
// isDeepStrictEqual, JSON.stringify and spreading see an ordinary record.
const handler: ProxyHandler<Slot> = {
  get(s, k) {
    if (k === SLOT) return s;
    if (s.copy) return s.copy[k];
    const v = s.base[k];
    // A list could be changed in place (push): hand out the copy's.
    return Array.isArray(v) ? s.writable()[k] : v;
  },
  set(s, k, v) {
    s.writable()[k] = v;
    return true;
  },
  deleteProperty(s, k) {
    delete s.writable()[k];
    return true;
  },
  defineProperty(s, k, d) {
    Object.defineProperty(s.writable(), k, { ...d, configurable: true });
    return true;
  },
  has(s, k) {
    return k in (s.copy ?? s.base);
  },
  ownKeys(s) {
    return Reflect.ownKeys(s.copy ?? s.base);
  },
  getOwnPropertyDescriptor(s, k) {
    const d = Reflect.getOwnPropertyDescriptor(s.copy ?? s.base, k);
    if (d) {
      d.configurable = true;
      if ('value' in d) d.writable = true;
    }
    return d;
  },
  getPrototypeOf() {
    return Object.prototype;
  },
  setPrototypeOf() {
    return false;
  },
  preventExtensions() {
    return false;
  },
};

/** A change ready to commit: the record as JSON (null for a delete) beside the change itself. */
export interface PreparedChange {
  readonly code: KindCode;
  readonly key: string;
  readonly json: string | null;
  readonly change: StoreChange;
}

/** What one draft cost: records copied or serialized, and records compared. */
export interface DraftCost {
  materialized: number;
  compared: number;
}

interface Base {
  mapOf(code: KindCode): Map<string, AnyRecord>;
  positionOf(code: KindCode, key: string): number | undefined;
}

export class Draft {
  readonly data: StoreData;
  readonly cost: DraftCost = { materialized: 0, compared: 0 };
  /** Records keepsOrder() and changes() looked at one by one (the touched and added ones, when the lists kept their records in place). */
  visited = 0;
  private readonly slots: Record<KindCode, Slot[]> = { a: [], t: [], c: [] };
  /** The lists as handed out, to tell untouched records apart by position (see changes()). */
  private initial: Record<KindCode, readonly unknown[]> = { a: [], t: [], c: [] };
  private readonly lists: Record<KindCode, AnyRecord[]> = { a: [], t: [], c: [] };
  private readonly touched: Record<KindCode, Slot[]> = { a: [], t: [], c: [] };

  /** `later`: the records are put in by build() (the draft is not usable before). */
  constructor(
    private readonly base: Base,
    later = false,
  ) {
    const lists = this.lists;
    this.data = { version: 1, accounts: lists.a as StoreData['accounts'], tokens: lists.t as StoreData['tokens'], certificates: lists.c as StoreData['certificates'] };
    // findAccount/findToken (store/operations.ts) ask this before they scan: a revocation among
    // 100,000 tokens reads one record through the draft instead of half of them.
    const find = <R>(code: KindCode, key: string): R | undefined => {
      const i = base.positionOf(code, key);
      return i !== undefined && this.slots[code][i]?.key === key ? (this.initial[code][i] as R) : undefined;
    };
    const recordLookup: RecordLookup = { account: (name) => find('a', name), token: (id) => find('t', id) };
    Object.defineProperty(this.data, RECORD_LOOKUP, { value: recordLookup, enumerable: false });
    if (!later) for (const _ of this.fill(Infinity));
  }

  /**
   * A draft made `chunk` records at a time, with `pause()` awaited between chunks: a process
   * that serves requests (the file store's admin API writes, store/file/follower.ts) does not
   * hold its event loop for the whole inventory's views. The base must not change meanwhile.
   */
  static async build(base: Base, pause: () => Promise<void>, chunk = 4096): Promise<Draft> {
    const draft = new Draft(base, true);
    for (const _ of draft.fill(chunk)) await pause();
    return draft;
  }

  private *fill(chunk: number): Generator<void> {
    let n = 0;
    for (const code of ['a', 't', 'c'] as const) {
      const slots = this.slots[code];
      const list = this.lists[code];
      for (const [key, record] of this.base.mapOf(code)) {
        const slot = new Slot(this, record as unknown as Record<string, unknown>, key, slots.length, this.touched[code]);
        slots.push(slot);
        list.push(new Proxy(slot, handler) as unknown as AnyRecord);
        if (++n % chunk === 0) yield;
      }
    }
    this.initial = { a: [...this.lists.a], t: [...this.lists.t], c: [...this.lists.c] };
  }

  /**
   * What turns the inventory into the draft, as diffStoreData (store/diff.ts) says it: puts for
   * new or changed records, deletes for records no longer listed; accounts first among puts and
   * last among deletes. Each put's record is the JSON the commit writes, parsed back and frozen:
   * what every replica will hold, detached from anything the mutation kept a reference to.
   */
  changes(): PreparedChange[] {
    const puts: PreparedChange[][] = [[], [], []];
    const deletes: PreparedChange[][] = [[], [], []];
    (['a', 't', 'c'] as const).forEach((code, rank) => {
      const kind = KIND[code];
      const list: unknown = this.data[LIST[code]];
      if (!Array.isArray(list)) throw new TypeError(`update: data.${LIST[code]} is not a list`);
      const map = this.base.mapOf(code);
      const prepare = (own: Slot | undefined, item: unknown): void => {
        this.visited++;
        this.cost.materialized++;
        const json = JSON.stringify(own ? own.copy : item);
        if (json === undefined) throw new TypeError(`update: an item of data.${LIST[code]} is not a record`);
        const record = JSON.parse(json) as AnyRecord;
        if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new TypeError(`update: an item of data.${LIST[code]} is not a record`);
        const key = String(keyOf(kind, record));
        const old = map.get(key);
        if (old !== undefined) {
          this.cost.compared++;
          if (sameRecord(old, record)) {
            if (own && own.key === key) own.seen = true;
            else listed.add(key);
            return;
          }
        }
        listed.add(key);
        puts[rank]!.push({ code, key, json, change: Object.freeze({ op: 'put', kind, record: freezeRecord(record) }) as StoreChange });
      };
      // Keys listed by records that are not untouched bases (new, changed, foreign).
      const listed = new Set<string>();
      if (this.kept(code, list as unknown[])) {
        // Every record handed out is still in its place: only the touched ones and those
        // added after them can differ, and none was left out.
        const touched = [...this.touched[code]].sort((x, y) => x.index - y.index);
        for (const slot of touched) prepare(slot, undefined);
        for (let i = this.initial[code].length; i < (list as unknown[]).length; i++) prepare(undefined, (list as unknown[])[i]);
        // A touched record may have been given another key: its own is then deleted.
        for (const slot of touched) if (!slot.seen && !listed.has(slot.key)) deletes[rank]!.push({ code, key: slot.key, json: null, change: Object.freeze({ op: 'delete', kind, key: slot.key }) });
        return;
      }
      // Lists keep their order (push appends, filter drops): walked beside the list as handed
      // out, a record is known by a pointer comparison; only where the two part (after a
      // removal, at an added or moved record) is the proxy asked which record it stands for.
      const initial = this.initial[code];
      let at = 0;
      for (const item of list as unknown[]) {
        // The slot of this draft's list the item is, or undefined (a new record, another
        // draft's, another list's).
        this.visited++;
        let own: Slot | undefined;
        if (at < initial.length && item === initial[at]) own = this.slots[code][at++];
        else if (typeof item === 'object' && item !== null) {
          const slot = (item as Record<symbol, unknown>)[SLOT] as Slot | undefined;
          if (slot !== undefined && slot.owner === this && this.slots[code][slot.index] === slot) {
            own = slot;
            at = slot.index + 1;
          }
        }
        if (own && own.copy === undefined) {
          own.seen = true;
          continue;
        }
        prepare(own, item);
      }
      for (const slot of this.slots[code]) {
        if (!slot.seen && !listed.has(slot.key)) deletes[rank]!.push({ code, key: slot.key, json: null, change: Object.freeze({ op: 'delete', kind, key: slot.key }) });
      }
    });
    return [...puts[0]!, ...puts[1]!, ...puts[2]!, ...deletes[1]!, ...deletes[2]!, ...deletes[0]!];
  }

  /**
   * Whether each list is the one handed out with records changed in place, left out, or added
   * at its end under new keys — what the lifecycle operations do. The file store
   * (store/file/follower.ts) writes such a change by its lines alone; any other (a list
   * reordered or replaced, a key renamed) it writes by rewriting the whole file.
   */
  keepsOrder(): boolean {
    for (const code of ['a', 't', 'c'] as const) {
      const list: unknown = this.data[LIST[code]];
      if (!Array.isArray(list)) return false;
      const kind = KIND[code];
      const map = this.base.mapOf(code);
      const initial = this.initial[code];
      const added = new Set<string>();
      let at = 0;
      if (this.kept(code, list as unknown[])) {
        // Only the touched records may have a new key, and only the added ones be anything else.
        if (this.touched[code].some((s) => String(keyOf(kind, s.copy as unknown as AnyRecord)) !== s.key)) return false;
        at = initial.length;
      }
      for (let i = at; i < (list as unknown[]).length; i++) {
        const item = (list as unknown[])[i];
        this.visited++;
        if (typeof item !== 'object' || item === null) return false;
        let own: Slot | undefined;
        if (at < initial.length && item === initial[at]) own = this.slots[code][at];
        else {
          const slot = (item as Record<symbol, unknown>)[SLOT] as Slot | undefined;
          if (slot !== undefined && slot.owner === this && this.slots[code][slot.index] === slot) own = slot;
        }
        if (own) {
          if (added.size > 0 || own.index < at) return false;
          if (own.copy !== undefined && String(keyOf(kind, own.copy as unknown as AnyRecord)) !== own.key) return false;
          at = own.index + 1;
          continue;
        }
        const key = String(keyOf(kind, item as AnyRecord));
        if (map.has(key) || added.has(key)) return false;
        added.add(key);
      }
    }
    return true;
  }

  /**
   * Whether `list` begins with the records as handed out, each in its place: one pass over
   * the two arrays, reading no record — a revocation among 100,000 then costs the records it
   * touched, not a visit to every one of them.
   */
  private kept(code: KindCode, list: readonly unknown[]): boolean {
    const initial = this.initial[code];
    if (list.length < initial.length) return false;
    for (let i = 0; i < initial.length; i++) if (list[i] !== initial[i]) return false;
    return true;
  }
}

/** Same fields with the same values; arrays compared element by element (records are flat). */
export function sameRecord(a: object, b: object): boolean {
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

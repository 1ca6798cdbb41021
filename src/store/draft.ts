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
//
// One module because the views kept between drafts, their proxy handler and the draft that hands
// them out share the slots' state: apart, each would reach into the others' fields.
import { RECORD_LOOKUP, type RecordLookup } from './operations.js';
import type { StoreChange, StoreData } from './types.js';
import { copyRecord, freezeRecord, KIND, keyOf, LIST, type AnyRecord, type KindCode } from './inventory.js';

const SLOT = Symbol('keygate.draftSlot');

/**
 * The views of one inventory's records, in its maps' order: a slot and its proxy per record.
 * A draft made by Draft.build() takes them from the inventory where an earlier one left them
 * (Base.views), so that a write costs the records it touches, not 100,000 new views (the file
 * store's admin API: 15–70 ms of its event loop and ~10 MB of garbage per write at 100,000
 * records). They are kept in step with the inventory by its put() (the slot of a replaced or
 * added record, see replace()) and dropped by a removal (places shift; the next draft makes
 * them again). The drafts that share them are made one at a time (the follower's updates are
 * exclusive); after each, release() retires the slots it gave copies to or looked up, so an
 * earlier draft's records — an operation's result, read after the update — keep their values.
 */
export class DraftViews {
  readonly slots: Record<KindCode, Slot[]> = { a: [], t: [], c: [] };
  readonly proxies: Record<KindCode, AnyRecord[]> = { a: [], t: [], c: [] };
  /** The draft writes go to (the one being filled or run); undefined between drafts. */
  active: Draft | undefined;

  add(code: KindCode, key: string, record: AnyRecord): void {
    const slot = new Slot(this, code, record as unknown as Record<string, unknown>, key, this.slots[code].length);
    this.slots[code].push(slot);
    this.proxies[code].push(new Proxy(slot, handler) as unknown as AnyRecord);
  }

  /** The inventory's record at `index` is now `record` (replaced, or added at the end). */
  replace(code: KindCode, index: number, key: string, record: AnyRecord): void {
    if (index > this.slots[code].length) throw new RangeError('draft views out of step with the inventory');
    if (index === this.slots[code].length) return this.add(code, key, record);
    const slot = new Slot(this, code, record as unknown as Record<string, unknown>, key, index);
    this.slots[code][index] = slot;
    this.proxies[code][index] = new Proxy(slot, handler) as unknown as AnyRecord;
  }
}

/** One record of a draft: the shared base, and a copy once anything may have changed it. */
class Slot {
  copy: Record<string | symbol, unknown> | undefined = undefined;
  /** Set when the slot left the shared views (release()): the draft whose it stays. */
  retiredBy: Draft | undefined = undefined;
  constructor(
    readonly views: DraftViews,
    readonly code: KindCode,
    readonly base: Readonly<Record<string | symbol, unknown>>,
    readonly key: string,
    /** Its place in the lists the drafts are handed out with. */
    readonly index: number,
  ) {}

  writable(): Record<string | symbol, unknown> {
    if (this.copy === undefined) {
      this.copy = copyRecord(this.base as object) as Record<string | symbol, unknown>;
      (this.retiredBy ?? this.views.active)?.touch(this);
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
  /** Where Draft.build keeps the views from one draft to the next (store/inventory.ts keeps them in step). */
  views?: DraftViews | undefined;
}

export class Draft {
  readonly data: StoreData;
  readonly cost: DraftCost = { materialized: 0, compared: 0 };
  /** Records keepsOrder() and changes() looked at one by one (the touched and added ones, when the lists kept their records in place). */
  visited = 0;
  /** The views' slots (shared with the drafts before and after when made by build()). */
  private slots: Record<KindCode, readonly Slot[]> = { a: [], t: [], c: [] };
  /** The lists as handed out, to tell untouched records apart by position (see changes()). */
  private initial: Record<KindCode, readonly unknown[]> = { a: [], t: [], c: [] };
  private lists: Record<KindCode, AnyRecord[]> = { a: [], t: [], c: [] };
  private readonly touched: Record<KindCode, Slot[]> = { a: [], t: [], c: [] };
  /** The slots changes() found in their place untouched, or whose key a changed record still holds. */
  private readonly seen = new Set<Slot>();
  /** Slots handed out by the lookup (an operation's result, likely): retired with the touched ones. */
  private readonly looked: Slot[] = [];
  private views: DraftViews;

  /** `later`: the records are put in by build() (the draft is not usable before). */
  constructor(
    private readonly base: Base,
    later = false,
  ) {
    this.views = new DraftViews();
    this.views.active = this;
    this.data = { version: 1, accounts: [], tokens: [], certificates: [] };
    // findAccount/findToken (store/operations.ts) ask this before they scan: a revocation among
    // 100,000 tokens reads one record through the draft instead of half of them.
    const find = <R>(code: KindCode, key: string): R | undefined => {
      const i = base.positionOf(code, key);
      const slot = i === undefined ? undefined : this.slots[code][i];
      if (slot?.key !== key) return undefined;
      this.looked.push(slot);
      return this.initial[code][i!] as R;
    };
    const recordLookup: RecordLookup = { account: (name) => find('a', name), token: (id) => find('t', id) };
    Object.defineProperty(this.data, RECORD_LOOKUP, { value: recordLookup, enumerable: false });
    if (!later) {
      for (const _ of fill(this.views, base, Infinity));
      this.take();
    }
  }

  /**
   * A draft of `base`, whose views are kept on it from draft to draft (DraftViews): only the
   * first draft, or the first after a removal, makes them, `chunk` records at a time with
   * `pause()` awaited between chunks, so that a process that serves requests (the file store's
   * admin API writes, store/file/follower.ts) does not hold its event loop for the whole
   * inventory's views. The base must not change while a draft is in use, and one draft of it
   * is in use at a time; call release() when done with it.
   */
  static async build(base: Base, pause: () => Promise<void>, chunk = 4096): Promise<Draft> {
    const draft = new Draft(base, true);
    let views = base.views;
    if (!views || views.active) {
      // None yet (or a draft still holds them, which the callers never do: fresh ones then).
      views = new DraftViews();
      views.active = draft;
      for (const _ of fill(views, base, chunk)) await pause();
      // The places the lookup reads, made now rather than by the mutation's first lookup.
      for (const code of ['a', 't', 'c'] as const) {
        base.positionOf(code, '');
        await pause();
      }
      base.views = views;
    }
    draft.views = views;
    views.active = draft;
    draft.take();
    return draft;
  }

  /** The lists as handed out: the views' proxies, in a list of the draft's own (the mutation may change it). */
  private take(): void {
    const { slots, proxies } = this.views;
    this.slots = slots;
    for (const code of ['a', 't', 'c'] as const) {
      this.lists[code] = proxies[code].slice();
      this.initial[code] = proxies[code].slice();
    }
    Object.assign(this.data, { accounts: this.lists.a, tokens: this.lists.t, certificates: this.lists.c });
  }

  /** Called by a slot the first time it gets a copy in this draft. */
  touch(slot: Slot): void {
    this.touched[slot.code].push(slot);
  }

  /**
   * Done with this draft: the slots it gave copies to or handed out by lookup leave the shared
   * views (fresh ones take their places), so that they keep this draft's values for whoever
   * still holds them, and the next draft starts from clean slots. Idempotent.
   */
  release(): void {
    const views = this.views;
    if (views.active !== this) return;
    views.active = undefined;
    for (const slot of [...this.touched.a, ...this.touched.t, ...this.touched.c, ...this.looked]) {
      if (slot.retiredBy !== undefined) continue;
      slot.retiredBy = this;
      // Still in place unless the inventory replaced its record since (an applied change).
      if (views.slots[slot.code][slot.index] === slot) views.replace(slot.code, slot.index, slot.key, slot.base as unknown as AnyRecord);
    }
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
            if (own && own.key === key) this.seen.add(own);
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
        for (const slot of touched) if (!this.seen.has(slot) && !listed.has(slot.key)) deletes[rank]!.push({ code, key: slot.key, json: null, change: Object.freeze({ op: 'delete', kind, key: slot.key }) });
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
          if (slot !== undefined && this.owns(code, slot)) {
            own = slot;
            at = slot.index + 1;
          }
        }
        if (own && own.copy === undefined) {
          this.seen.add(own);
          continue;
        }
        prepare(own, item);
      }
      for (const slot of this.slots[code]) {
        if (!this.seen.has(slot) && !listed.has(slot.key)) deletes[rank]!.push({ code, key: slot.key, json: null, change: Object.freeze({ op: 'delete', kind, key: slot.key }) });
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
          if (slot !== undefined && this.owns(code, slot)) own = slot;
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

  /** Whether `slot` is one of the records this draft was handed out with (not another draft's, not retired). */
  private owns(code: KindCode, slot: Slot): boolean {
    return slot.views === this.views && slot.retiredBy === undefined && this.slots[code][slot.index] === slot;
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

/** Makes a view for every record of `base` not yet in `views`, yielding every `chunk` records. */
function* fill(views: DraftViews, base: Base, chunk: number): Generator<void> {
  let n = 0;
  for (const code of ['a', 't', 'c'] as const) {
    for (const [key, record] of base.mapOf(code)) {
      views.add(code, key, record);
      if (++n % chunk === 0) yield;
    }
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

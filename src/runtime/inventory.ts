// The inventory a running proxy serves: the credential index, kept in step with the store it
// follows. The first snapshot builds the index; every later change is applied to it in place
// (runtime/credential-index.ts), once the version it leads to passed the same cross-checks
// against keygate.yaml as `keygate check`. A version that fails them is refused: the index
// stays at the last version accepted, and the next version that passes is reached from there
// by its difference, so a refused version never leaks into a later one.
//
// A change to an accepted version is checked incrementally (store/check.ts changesPass: the
// changed records and what they touch), so that one revocation in an inventory of 100,000
// costs what it changes; the whole version is checked only to refuse it (positioning the
// problems) and while the index is behind a refused version.
import { SourceError } from '../config/source.js';
import { changesPass, checkStoreData } from '../store/check.js';
import { COLLECT_FROM_RECORDS, collectGarbage } from '../store/collect-garbage.js';
import { applyChanges, diffStoreData } from '../store/diff.js';
import type { CredentialStore, StoreChange, StoreData, StoreFollower, StoreProblem } from '../store/types.js';
import type { CompiledConfig } from './compile.js';
import { LiveIndex, type Touched } from './credential-index.js';

export interface InventoryEvents {
  /** A snapshot or a batch of changes was applied; `touched` is set for changes applied in place. */
  applied(what: string, index: LiveIndex, touched?: Touched): void;
  rejected(problems: readonly StoreProblem[]): void;
  /** The store became reachable or unreachable (shared stores). */
  status?(up: boolean, detail?: string): void;
}

export class Inventory {
  /** The store's version as delivered, while it was refused (the index is behind it); else undefined: the index's own. */
  private stored: StoreData | undefined;

  private constructor(
    private current: LiveIndex,
    private follower: StoreFollower | undefined,
    private readonly store: CredentialStore,
    private readonly compiled: () => CompiledConfig,
    private readonly events: InventoryEvents,
  ) {}

  get index(): LiveIndex {
    return this.current;
  }

  /**
   * Follows `store`; resolves with the first version, or rejects with its problems (a proxy
   * does not start on an inventory it cannot check).
   */
  static open(store: CredentialStore, compiled: () => CompiledConfig, events: InventoryEvents): Promise<Inventory> {
    return new Promise((resolve, reject) => {
      let inventory: Inventory | undefined;
      const follower = store.follow({
        onSnapshot: (data) => {
          if (inventory) return inventory.received(data, 'snapshot');
          const problems = checkStoreData(data, compiled().config);
          if (problems.length) {
            // Positioned before the follower stops: the file store asks its reader where they are.
            void Promise.resolve(store.locate(problems, data)).then((located) => {
              follower.stop();
              reject(new SourceError([...located]));
            });
            return;
          }
          inventory = new Inventory(LiveIndex.build(compiled(), data), follower, store, compiled, events);
          // Before the first request: the garbage of building a large index goes now (store/collect-garbage.ts).
          if (data.accounts.length + data.tokens.length + data.certificates.length >= COLLECT_FROM_RECORDS) collectGarbage();
          resolve(inventory);
        },
        onChanges: (changes) => inventory?.changed(changes),
        onRejected: (problems) => {
          if (inventory) return events.rejected(problems);
          follower.stop();
          reject(new SourceError([...problems]));
        },
        onStatus: (up, detail) => events.status?.(up, detail),
      });
    });
  }

  private changed(changes: readonly StoreChange[]): void {
    const what = `${changes.length} change(s)`;
    const before = recordsIn(this.current);
    if (this.stored === undefined && changesPass(this.current, changes, this.compiled().config)) {
      this.events.applied(what, this.current, this.current.apply(changes));
    } else this.received(applyChanges(this.stored ?? this.current.snapshot(), changes), what, changes);
    this.shrank(before);
  }

  /**
   * After a large inventory became a small one (the file cut from 100,000 records to 1,000),
   * the records it let go are collected at once: V8 would keep them (~100 MB) until the next
   * large allocation, which an idle proxy may never make. What is left alive is small, so the
   * pause is short; a large inventory is never collected this way (its pause would be long).
   */
  private shrank(before: number): void {
    if (before >= COLLECT_FROM_RECORDS && recordsIn(this.current) < COLLECT_FROM_RECORDS) setImmediate(() => collectGarbage());
  }

  /** The whole version checked: a snapshot, a version to refuse, or one after a refused one. */
  private received(next: StoreData, what: string, changes?: readonly StoreChange[]): void {
    const problems = checkStoreData(next, this.compiled().config);
    if (problems.length) {
      this.stored = next;
      void Promise.resolve(this.store.locate(problems, next)).then((located) => this.events.rejected(located));
      return;
    }
    const behind = this.stored !== undefined;
    this.stored = undefined;
    if (what === 'snapshot') {
      const before = recordsIn(this.current);
      this.current = LiveIndex.build(this.compiled(), next);
      this.events.applied(what, this.current);
      this.shrank(before);
    } else {
      this.events.applied(what, this.current, this.current.apply(changes && !behind ? changes : diffStoreData(this.current.snapshot(), next)));
    }
  }

  /** The accepted data indexed against a new config (after a reload the caller checked it for). */
  rebuild(compiled: CompiledConfig): void {
    this.current = LiveIndex.build(compiled, this.current.snapshot());
  }

  /** Resolves once every change written so far is applied. */
  sync(): Promise<void> {
    return this.follower ? this.follower.sync() : Promise.resolve();
  }

  stop(): void {
    this.follower?.stop();
    this.follower = undefined;
  }
}

function recordsIn(index: LiveIndex): number {
  const { accounts, tokens, certificates } = index.size;
  return accounts + tokens + certificates;
}

// The inventory a running proxy serves: the credential index, kept in step with the store it
// follows. The first snapshot builds the index; every later change is applied to it in place
// (runtime/credential-index.ts), once the version it leads to passed the same cross-checks
// against keygate.yaml as `keygate check`. A version that fails them is refused: the index
// stays at the last version accepted, and the next version that passes is reached from there
// by its difference, so a refused version never leaks into a later one.
import { SourceError } from '../config/source.js';
import { checkStoreData } from '../store/check.js';
import { applyChanges, diffStoreData } from '../store/diff.js';
import type { CredentialStore, StoreData, StoreFollower, StoreProblem } from '../store/types.js';
import type { CompiledConfig } from './compile.js';
import { LiveIndex } from './credential-index.js';

export interface InventoryEvents {
  /** A snapshot or a batch of changes was applied. */
  applied(what: string, index: LiveIndex): void;
  rejected(problems: readonly StoreProblem[]): void;
  /** The store became reachable or unreachable (shared stores). */
  status?(up: boolean, detail?: string): void;
}

export class Inventory {
  /** The store's version as delivered, accepted or not. */
  private stored: StoreData;
  /** True while the index is behind `stored` because a version was refused. */
  private behind = false;

  private constructor(
    private current: LiveIndex,
    private follower: StoreFollower | undefined,
    private readonly store: CredentialStore,
    private readonly compiled: () => CompiledConfig,
    private readonly events: InventoryEvents,
  ) {
    this.stored = current.snapshot();
  }

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
            follower.stop();
            return reject(new SourceError(store.locate(problems)));
          }
          inventory = new Inventory(LiveIndex.build(compiled(), data), follower, store, compiled, events);
          resolve(inventory);
        },
        onChanges: (changes) => inventory?.received(applyChanges(inventory.stored, changes), `${changes.length} change(s)`, changes),
        onRejected: (problems) => {
          if (inventory) return events.rejected(problems);
          follower.stop();
          reject(new SourceError([...problems]));
        },
        onStatus: (up, detail) => events.status?.(up, detail),
      });
    });
  }

  private received(next: StoreData, what: string, changes?: Parameters<LiveIndex['apply']>[0]): void {
    this.stored = next;
    const problems = checkStoreData(next, this.compiled().config);
    if (problems.length) {
      this.behind = true;
      this.events.rejected(this.store.locate(problems));
      return;
    }
    if (changes && !this.behind) this.current.apply(changes);
    else if (what === 'snapshot') this.current = LiveIndex.build(this.compiled(), next);
    else this.current.apply(diffStoreData(this.current.snapshot(), next));
    this.behind = false;
    this.events.applied(what, this.current);
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

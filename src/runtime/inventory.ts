// The inventory a running proxy serves: the credential index, kept in step with the store it
// follows. The first snapshot builds the index; every later change is applied to it in place
// (runtime/credential-index.ts), after the new version passed the same cross-checks against
// keygate.yaml as `keygate check`. A version that fails them is refused and the index stays
// as it was; the store then reports the next changes relative to the version kept.
import { SourceError } from '../config/source.js';
import { checkStoreData } from '../store/check.js';
import type { CredentialStore, StoreFollower, StoreProblem } from '../store/types.js';
import type { CompiledConfig } from './compile.js';
import { LiveIndex } from './credential-index.js';

export interface InventoryEvents {
  /** A snapshot or a batch of changes was applied. */
  applied(what: string, index: LiveIndex): void;
  rejected(problems: readonly StoreProblem[]): void;
}

export class Inventory {
  private constructor(
    private current: LiveIndex,
    private readonly follower: StoreFollower,
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
        accept: (data) => checkStoreData(data, compiled().config),
        onSnapshot: (data) => {
          const index = LiveIndex.build(compiled(), data);
          if (!inventory) {
            resolve((inventory = new Inventory(index, follower)));
            return;
          }
          inventory.current = index;
          events.applied('snapshot', index);
        },
        onChanges: (changes) => {
          if (!inventory) return;
          inventory.current.apply(changes);
          events.applied(`${changes.length} change(s)`, inventory.current);
        },
        onRejected: (problems) => {
          if (inventory) return events.rejected(problems);
          follower.stop();
          reject(new SourceError([...problems]));
        },
      });
    });
  }

  /** The same data indexed against a new config (after a reload the caller has checked it for). */
  rebuild(compiled: CompiledConfig): void {
    this.current = LiveIndex.build(compiled, this.current.snapshot());
  }

  /** Resolves once every change written so far is applied. */
  sync(): Promise<void> {
    return this.follower.sync();
  }

  stop(): void {
    this.follower.stop();
  }
}

// Last use of each credential: recorded in memory on the request path (a Map set), written
// to the store in batches. Bounded by the number of credentials that exist.
import type { CredentialStore, UsageMap } from './types.js';

export class UsageTracker {
  private pending = new Map<string, number>();
  /** What the store holds, as far as this process knows: read at start, merged after each flush. */
  private known: UsageMap = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: CredentialStore,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Reads what the store holds already (the admin API shows it without a read per call). */
  async load(): Promise<void> {
    try {
      this.known = await this.store.readUsage();
    } catch (err) {
      this.onError(err);
    }
  }

  /** Last use of every credential: the stored times with the newer ones not yet written. */
  view(): UsageMap {
    if (this.pending.size === 0) return this.known;
    const out: UsageMap = { ...this.known };
    for (const [id, t] of this.pending) if (!(out[id]! >= t)) out[id] = t;
    return out;
  }

  touch(credentialId: string, nowMs: number): void {
    this.pending.set(credentialId, nowMs);
  }

  start(intervalMs: number): void {
    this.stop();
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch: UsageMap = Object.fromEntries(this.pending);
    this.pending = new Map();
    // Shown at once (view()), written in the background; a failed write is retried next time.
    for (const [id, t] of Object.entries(batch)) if (!(this.known[id]! >= t)) this.known[id] = t;
    try {
      await this.store.writeUsage(batch);
    } catch (err) {
      // Keep the newer of what failed and what arrived since, and try again next time.
      for (const [id, t] of Object.entries(batch)) if (!(this.pending.get(id)! >= t)) this.pending.set(id, t);
      this.onError(err);
    }
  }
}

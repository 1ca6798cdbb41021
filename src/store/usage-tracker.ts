// Last use of each credential: recorded in memory on the request path (a Map set), written
// to the store in batches. Bounded by the number of credentials that exist.
import type { CredentialStore, UsageMap } from './types.js';

export class UsageTracker {
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: CredentialStore,
    private readonly onError: (err: unknown) => void,
  ) {}

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
    try {
      await this.store.writeUsage(batch);
    } catch (err) {
      // Keep the newer of what failed and what arrived since, and try again next time.
      for (const [id, t] of Object.entries(batch)) if (!(this.pending.get(id)! >= t)) this.pending.set(id, t);
      this.onError(err);
    }
  }
}

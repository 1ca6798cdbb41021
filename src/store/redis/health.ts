// Reachability of the shared store, as every Redis user in the process sees it (the store's
// poll and writes, the limiter's checks). Reports each transition once to the observer (the
// lead connects it to keygate_store_up and keygate_store_errors_total{op}) and to the log.
import type { Logger } from 'pino';

/** What a failed call was doing; the label of keygate_store_errors_total. */
export type StoreOp = 'read' | 'update' | 'sync' | 'usage' | 'limit' | 'export';

export interface StoreObserver {
  /** The store became reachable (true) or unreachable (false). Called on transitions only. */
  up(isUp: boolean, detail?: string): void;
  /** One failed call. */
  error(op: StoreOp): void;
}

export class StoreHealth {
  private state: boolean | undefined;

  constructor(
    private readonly description: string,
    private readonly observer?: StoreObserver,
    private readonly logger?: Logger,
  ) {}

  /** Undefined until the first call succeeded or failed. */
  get isUp(): boolean | undefined {
    return this.state;
  }

  ok(): void {
    if (this.state === true) return;
    this.state = true;
    this.logger?.info({ store: this.description }, 'shared store reachable');
    this.observer?.up(true);
  }

  failed(op: StoreOp, err: unknown): void {
    this.observer?.error(op);
    if (this.state === false) return;
    this.state = false;
    const detail = errorText(err);
    this.logger?.warn({ store: this.description, op, err: detail }, 'shared store unreachable');
    this.observer?.up(false, detail);
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

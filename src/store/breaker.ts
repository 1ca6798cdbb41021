// A circuit breaker for calls to a shared store on the request path. Closed: calls go through.
// After `failures` failures in a row it opens: calls are refused at once (no timeout paid per
// request) until the next probe time; then one call is let through (half-open). Its success
// closes the breaker, its failure opens it again for longer (doubling up to `maxOpenMs`).
// Hand-rolled rather than a library: the state must be read synchronously on every request
// with an injected clock (tests fast-forward it), and the command timeout is the Redis
// client's own; breaker libraries wrap each call in a timer and a promise of their own.

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Failures in a row that open the breaker. Default 3. */
  failures?: number;
  /** First time the breaker stays open before a probe. Default 500 ms. */
  openMs?: number;
  /** Longest time it stays open. Default 5 s. */
  maxOpenMs?: number;
  now?: () => number;
  onChange?: (state: BreakerState, previous: BreakerState) => void;
}

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failuresInRow = 0;
  private opened = 0;
  private probeAt = 0;
  private probing = false;
  private readonly threshold: number;
  private readonly openMs: number;
  private readonly maxOpenMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: BreakerOptions = {}) {
    this.threshold = opts.failures ?? 3;
    this.openMs = opts.openMs ?? 500;
    this.maxOpenMs = opts.maxOpenMs ?? 5_000;
    this.now = opts.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.current;
  }

  /** May a call go out now? In half-open, only one at a time (the probe). */
  allow(): boolean {
    if (this.current === 'closed') return true;
    if (this.current === 'half-open') return !this.probing && (this.probing = true);
    if (this.now() < this.probeAt) return false;
    this.set('half-open');
    this.probing = true;
    return true;
  }

  /** Milliseconds until the next probe may go out (0 when calls go through). */
  msUntilProbe(): number {
    return this.current === 'open' ? Math.max(0, this.probeAt - this.now()) : 0;
  }

  success(): void {
    this.failuresInRow = 0;
    this.opened = 0;
    this.probing = false;
    if (this.current !== 'closed') this.set('closed');
  }

  failure(): void {
    this.failuresInRow++;
    const probeFailed = this.current === 'half-open';
    this.probing = false;
    if (probeFailed || (this.current === 'closed' && this.failuresInRow >= this.threshold)) {
      this.opened++;
      this.probeAt = this.now() + Math.min(this.maxOpenMs, this.openMs * 2 ** (this.opened - 1));
      this.set('open');
    }
  }

  private set(state: BreakerState): void {
    const previous = this.current;
    this.current = state;
    this.opts.onChange?.(state, previous);
  }
}

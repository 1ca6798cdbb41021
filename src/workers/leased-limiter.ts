// The rate limiter of a worker process when there is no Redis: it spends tokens leased from
// the supervisor's coordinator (coordinator.ts), asking over IPC only when its lease for a
// bucket runs low. A request served from the lease is answered synchronously, as with the
// memory limiter; one that has to wait for a lease waits for one round trip to the
// supervisor, shared by every request that needs the same bucket meanwhile.
//
// Invariants the coordinator's accounting relies on: at most one lease request in flight per
// bucket (so `held` is never stale by a grant on its way), and nothing is spent after the
// lease's expiry. If the supervisor does not answer (it is gone or stuck), the request is
// answered by this worker's own in-memory buckets: limits then hold per worker, not per pod,
// which errs towards admitting, as an evicted bucket does.
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observe/logger.js';
import { peekToken } from '../ratelimit/token-bucket.js';
import type { BucketPolicy, LimitAnswer, RateLimiter, TakeResult } from '../vocabulary/limits.js';
import { leaseSize } from './coordinator.js';
import type { PolicyWire } from './protocol.js';

const EPSILON = 1e-9;

export interface LeaseTransport {
  lease(key: string, policy: PolicyWire, held: number, want: number): Promise<{ granted: number; tokens: number; atMs: number; expiresAtMs: number }>;
  peek(key: string, policy: PolicyWire): Promise<{ tokens: number; atMs: number }>;
}

interface Pool {
  /** Tokens this worker may spend until expiresAtMs. */
  tokens: number;
  expiresAtMs: number;
  /** The bucket as the coordinator last reported it (RateLimit-Remaining is this plus `tokens`). */
  central: number;
  /** The coordinator had nothing to lease: refuse here, without asking, until then. */
  blockedUntilMs: number;
  /** Requests waiting for the lease being asked for (the next one asks for at least as many). */
  waiting: number;
  asking?: Promise<void>;
}

export interface LeasedLimiterOptions {
  workers: number;
  /** Answers while the supervisor cannot (its IPC channel is gone or a request timed out). */
  fallback: RateLimiter;
  logger?: Logger;
  /** Buckets tracked (LRU). Default 100000. */
  maxKeys?: number;
}

const wire = (p: BucketPolicy): PolicyWire => ({ name: p.name, ratePerMs: p.ratePerMs, burst: p.burst });

export class LeasedRateLimiter implements RateLimiter {
  private readonly pools: LRUCache<string, Pool>;
  private lastWarnMs = 0;

  constructor(
    private readonly transport: LeaseTransport,
    private readonly opts: LeasedLimiterOptions,
  ) {
    this.pools = new LRUCache({ max: opts.maxKeys ?? 100_000 });
  }

  take(key: string, policy: BucketPolicy, nowMs: number): LimitAnswer | Promise<LimitAnswer> {
    const k = policy.name + '\u0000' + key;
    let pool = this.pools.get(k);
    if (!pool) this.pools.set(k, (pool = { tokens: 0, expiresAtMs: 0, central: policy.burst, blockedUntilMs: 0, waiting: 0 }));
    const now = this.spendable(pool, nowMs);
    if (now) return now === 'spent' ? this.spent(k, key, policy, pool, nowMs) : this.refused(pool, policy, nowMs);
    return this.waitAndTake(k, key, policy, pool, nowMs, 0);
  }

  peek(key: string, policy: BucketPolicy, nowMs: number): LimitAnswer | Promise<LimitAnswer> {
    const pool = this.pools.peek(policy.name + '\u0000' + key);
    const local = pool && nowMs < pool.expiresAtMs ? pool.tokens : 0;
    return this.transport.peek(key, wire(policy)).then(
      (b) => peekToken({ tokens: b.tokens + local, updatedMs: nowMs }, policy, nowMs),
      (err: unknown) => {
        this.warn(err);
        return this.opts.fallback.peek(key, policy, nowMs);
      },
    );
  }

  async close(): Promise<void> {
    this.pools.clear();
    await this.opts.fallback.close();
  }

  /** 'spent' when a leased token was taken, 'refused' when the bucket is known empty, else undefined. */
  private spendable(pool: Pool, nowMs: number): 'spent' | 'refused' | undefined {
    if (nowMs >= pool.expiresAtMs) pool.tokens = 0;
    if (pool.tokens >= 1 - EPSILON) {
      pool.tokens = Math.max(0, pool.tokens - 1);
      return 'spent';
    }
    return nowMs < pool.blockedUntilMs ? 'refused' : undefined;
  }

  private spent(k: string, key: string, policy: BucketPolicy, pool: Pool, nowMs: number): TakeResult {
    // Ask for the next lease while half of this one is left, so that a busy bucket rarely
    // waits for a round trip. Not for one-token leases: those are the small bursts, where a
    // worker holding two tokens would be half of the whole bucket.
    const lease = leaseSize(policy.burst, this.opts.workers);
    if (lease > 1 && pool.tokens <= lease / 2 && !pool.asking && nowMs >= pool.blockedUntilMs) void this.ask(k, key, policy, pool).catch(() => undefined);
    return view(pool.central + pool.tokens, policy, true, 0);
  }

  private refused(pool: Pool, policy: BucketPolicy, nowMs: number): TakeResult {
    return view(pool.central + pool.tokens, policy, false, Math.max(1, Math.ceil((pool.blockedUntilMs - nowMs) / 1000)));
  }

  private async waitAndTake(k: string, key: string, policy: BucketPolicy, pool: Pool, nowMs: number, attempt: number): Promise<LimitAnswer> {
    pool.waiting++;
    try {
      await this.ask(k, key, policy, pool);
    } catch (err) {
      this.warn(err);
      return this.opts.fallback.take(key, policy, nowMs);
    } finally {
      pool.waiting--;
    }
    const state = this.spendable(pool, nowMs);
    if (state === 'spent') return this.spent(k, key, policy, pool, nowMs);
    if (state === 'refused') return this.refused(pool, policy, nowMs);
    // The lease went to requests that were waiting too (more came while it was asked for):
    // ask again, a bounded number of times — each round leases or learns the bucket is empty.
    if (attempt < 8) return this.waitAndTake(k, key, policy, pool, nowMs, attempt + 1);
    return view(pool.central + pool.tokens, policy, false, 1);
  }

  /** One lease request per bucket at a time; every caller meanwhile shares it. */
  private ask(k: string, key: string, policy: BucketPolicy, pool: Pool): Promise<void> {
    if (pool.asking) return pool.asking;
    const held = pool.tokens;
    const asking = this.transport.lease(key, wire(policy), held, pool.waiting).then(
      (g) => {
        // A pool evicted meanwhile keeps working for the callers that hold it.
        pool.tokens = (g.atMs < pool.expiresAtMs ? pool.tokens : 0) + g.granted;
        pool.expiresAtMs = g.expiresAtMs;
        pool.central = g.tokens;
        pool.blockedUntilMs = g.granted > 0 ? 0 : g.atMs + Math.max(0, 1 - g.tokens) / policy.ratePerMs;
        pool.asking = undefined;
        if (!this.pools.has(k)) this.pools.set(k, pool);
      },
      (err: unknown) => {
        pool.asking = undefined;
        throw err;
      },
    );
    pool.asking = asking;
    return asking;
  }

  private warn(err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarnMs < 10_000) return;
    this.lastWarnMs = now;
    this.opts.logger?.warn({ err: (err as Error)?.message }, 'rate limits: the supervisor did not answer; this worker limits on its own until it does');
  }
}

/** The answer for a bucket that holds `tokens` as this worker sees it. */
function view(tokens: number, policy: BucketPolicy, allowed: boolean, retryAfterSec: number): TakeResult {
  const missing = Math.max(0, policy.burst - tokens - EPSILON);
  return {
    allowed,
    limit: policy.burst,
    remaining: Math.max(0, Math.floor(tokens + EPSILON)),
    resetSec: Math.ceil(missing / policy.ratePerMs / 1000),
    retryAfterSec: allowed ? 0 : retryAfterSec,
  };
}

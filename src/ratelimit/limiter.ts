// Keyed rate limiters. The memory limiter keeps buckets in a bounded LRU: an evicted bucket
// comes back full, which errs towards admitting, never towards unbounded memory. A Redis
// limiter (several replicas) implements the same interface.
import { LRUCache } from 'lru-cache';
import { fullBucket, takeToken, type BucketPolicy, type BucketState, type TakeResult } from './token-bucket.js';

export interface RateLimiter {
  take(key: string, policy: BucketPolicy, nowMs: number): TakeResult | Promise<TakeResult>;
  close(): Promise<void>;
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets: LRUCache<string, BucketState>;

  constructor(maxKeys = 100_000) {
    this.buckets = new LRUCache({ max: maxKeys });
  }

  take(key: string, policy: BucketPolicy, nowMs: number): TakeResult {
    // The policy is part of the key: a changed policy starts a fresh bucket.
    const k = policy.name + '\u0000' + key;
    let state = this.buckets.get(k);
    if (!state) this.buckets.set(k, (state = fullBucket(policy, nowMs)));
    return takeToken(state, policy, nowMs);
  }

  get size(): number {
    return this.buckets.size;
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}

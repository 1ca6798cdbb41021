// The in-memory limiter: buckets in a bounded LRU. An evicted bucket comes back full, which
// errs towards admitting, never towards unbounded memory. Other backends (Redis for a fleet,
// the coordinator for workers) implement the same RateLimiter contract.
import { LRUCache } from 'lru-cache';
import type { RateLimiter } from '../vocabulary/limits.js';
import { fullBucket, peekToken, takeToken, type BucketPolicy, type BucketState, type TakeResult } from './token-bucket.js';

export type { RateLimiter };

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

  peek(key: string, policy: BucketPolicy, nowMs: number): TakeResult {
    const state = this.buckets.peek(policy.name + '\u0000' + key) ?? fullBucket(policy, nowMs);
    return peekToken(state, policy, nowMs);
  }

  get size(): number {
    return this.buckets.size;
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}

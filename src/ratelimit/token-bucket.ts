// Token bucket (pure; the caller passes the clock). A bucket holds up to `burst` tokens and
// refills at `ratePerMs`; a request takes one. Buckets start full.

import type { BucketPolicy, TakeResult } from '../vocabulary/limits.js';

export type { BucketPolicy, TakeResult };

export interface BucketState {
  tokens: number;
  updatedMs: number;
}

/**
 * Refills add elapsed × rate in floating point, and ten refills of 0.1 make 0.9999999999999999,
 * not 1: without a tolerance a 10/s bucket fed every 10 ms admitted 9.1 requests a second.
 */
const EPSILON = 1e-9;

/** Refills and takes one token, mutating `state` in place (no allocation besides the result). */
export function takeToken(state: BucketState, policy: BucketPolicy, nowMs: number): TakeResult {
  const elapsed = Math.max(0, nowMs - state.updatedMs);
  state.tokens = Math.min(policy.burst, state.tokens + elapsed * policy.ratePerMs);
  // A clock stepped back must not move the mark back: the interval up to the mark was already
  // credited, and crediting it again when the clock catches up would refill the bucket twice.
  if (nowMs > state.updatedMs) state.updatedMs = nowMs;
  const allowed = state.tokens >= 1 - EPSILON;
  if (allowed) state.tokens = Math.max(0, state.tokens - 1);
  const missing = Math.max(0, policy.burst - state.tokens - EPSILON);
  return {
    allowed,
    limit: policy.burst,
    remaining: Math.floor(state.tokens + EPSILON),
    resetSec: Math.ceil(missing / policy.ratePerMs / 1000),
    retryAfterSec: allowed ? 0 : Math.max(1, Math.ceil((1 - state.tokens) / policy.ratePerMs / 1000)),
  };
}

export function fullBucket(policy: BucketPolicy, nowMs: number): BucketState {
  return { tokens: policy.burst, updatedMs: nowMs };
}

/** What a take would see, without changing `state`: allowed when a token is there to take. */
export function peekToken(state: Readonly<BucketState>, policy: BucketPolicy, nowMs: number): TakeResult {
  const tokens = Math.min(policy.burst, state.tokens + Math.max(0, nowMs - state.updatedMs) * policy.ratePerMs);
  const allowed = tokens >= 1 - EPSILON;
  const missing = Math.max(0, policy.burst - tokens - EPSILON);
  return {
    allowed,
    limit: policy.burst,
    remaining: Math.floor(tokens + EPSILON),
    resetSec: Math.ceil(missing / policy.ratePerMs / 1000),
    retryAfterSec: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / policy.ratePerMs / 1000)),
  };
}

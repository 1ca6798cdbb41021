// Token bucket (pure; the caller passes the clock). A bucket holds up to `burst` tokens and
// refills at `ratePerMs`; a request takes one. Buckets start full.

export interface BucketPolicy {
  /** Policy name from keygate.yaml, or a built-in name. */
  readonly name: string;
  readonly ratePerMs: number;
  readonly burst: number;
  readonly per: 'credential' | 'account';
  /** As written ("10/s"), for explain and logs. */
  readonly rateText: string;
}

export interface BucketState {
  tokens: number;
  updatedMs: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Bucket size (RateLimit-Limit). */
  limit: number;
  /** Whole tokens left after this request (RateLimit-Remaining). */
  remaining: number;
  /** Seconds until the bucket is full again (RateLimit-Reset). */
  resetSec: number;
  /** When refused: seconds until one token is back (Retry-After), at least 1. */
  retryAfterSec: number;
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

// The words of rate limiting that several layers share: a policy (what the bucket allows), the
// answer of one take, and the limiter contract every backend (memory, Redis, the worker
// coordinator) implements. The request path sees only these types.

export interface BucketPolicy {
  /** Policy name from keygate.yaml, or a built-in name. */
  readonly name: string;
  readonly ratePerMs: number;
  readonly burst: number;
  readonly per: 'credential' | 'account';
  /** As written ("10/s"), for explain and logs. */
  readonly rateText: string;
}

export interface TakeResult {
  readonly allowed: boolean;
  /** Bucket size (RateLimit-Limit). */
  readonly limit: number;
  /** Whole tokens left after this request (RateLimit-Remaining). */
  readonly remaining: number;
  /** Seconds until the bucket is full again (RateLimit-Reset). */
  readonly resetSec: number;
  /** When refused: seconds until one token is back (Retry-After), at least 1. */
  readonly retryAfterSec: number;
  readonly unavailable?: undefined;
}

/**
 * A shared limiter that cannot decide (its store is unreachable) with failMode closed. With
 * failMode open the backend answers from its in-memory fallback instead and never returns this.
 */
export interface LimiterUnavailable {
  readonly allowed: false;
  readonly unavailable: true;
  /** Seconds the caller should wait (Retry-After): until the next reconnection attempt. */
  readonly retryAfterSec: number;
}

export type LimitAnswer = TakeResult | LimiterUnavailable;

export interface RateLimiter {
  /** Takes one token from the bucket `key` under `policy`. Buckets start full. */
  take(key: string, policy: BucketPolicy, nowMs: number): LimitAnswer | Promise<LimitAnswer>;
  /** The bucket as it stands, without taking a token (`keygate explain`). */
  peek(key: string, policy: BucketPolicy, nowMs: number): LimitAnswer | Promise<LimitAnswer>;
  close(): Promise<void>;
}

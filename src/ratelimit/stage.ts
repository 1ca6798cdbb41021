// ④ Limit: one token from the bucket of the credential (or its account, as the policy says).
// Every authenticated answer carries RateLimit-* (IETF draft) and the older X-RateLimit-*.
import { KeygateError } from '../errors/keygate-error.js';
import type { RequestContext } from '../pipeline/context.js';
import type { RateLimiter } from './limiter.js';
import type { TakeResult } from './token-bucket.js';

export function limitStage(limiter: RateLimiter) {
  return function limit(ctx: RequestContext): KeygateError | undefined | Promise<KeygateError | undefined> {
    const entry = ctx.credential!;
    const policy = entry.policy;
    if (!policy) return undefined;
    const r = limiter.take(entry.bucketKey, policy, ctx.nowMs);
    return r instanceof Promise ? r.then((res) => apply(ctx, res)) : apply(ctx, r);
  };
}

function apply(ctx: RequestContext, r: TakeResult): KeygateError | undefined {
  ctx.limit = r;
  setRateLimitHeaders(ctx, r);
  if (r.allowed) return undefined;
  return new KeygateError('KG_ERR_RATE_LIMITED', undefined, { 'retry-after': String(r.retryAfterSec) });
}

export function setRateLimitHeaders(ctx: RequestContext, r: TakeResult): void {
  const res = ctx.res;
  const limit = String(r.limit);
  const remaining = String(r.remaining);
  const reset = String(r.resetSec);
  res.setHeader('ratelimit-limit', limit);
  res.setHeader('ratelimit-remaining', remaining);
  res.setHeader('ratelimit-reset', reset);
  res.setHeader('x-ratelimit-limit', limit);
  res.setHeader('x-ratelimit-remaining', remaining);
  res.setHeader('x-ratelimit-reset', reset);
}

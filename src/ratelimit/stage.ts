// ④ Limit: one token from the bucket of the credential (or its account, as the policy says).
// Every authenticated answer carries RateLimit-* (IETF draft) and the older X-RateLimit-*.
import { KeygateError } from '../errors/keygate-error.js';
import type { RequestContext } from '../pipeline/context.js';
import type { RateLimiter } from './limiter.js';
import type { LimitAnswer } from '../vocabulary/limits.js';

export function limitStage(limiter: RateLimiter) {
  return function limit(ctx: RequestContext): KeygateError | undefined | Promise<KeygateError | undefined> {
    const entry = ctx.credential!;
    const policy = entry.policy;
    if (!policy) return undefined;
    const r = limiter.take(entry.bucketKey, policy, ctx.nowMs);
    return r instanceof Promise ? r.then((res) => apply(ctx, res)) : apply(ctx, r);
  };
}

function apply(ctx: RequestContext, r: LimitAnswer): KeygateError | undefined {
  // failMode closed and the shared store unreachable: refuse rather than admit unlimited.
  if (r.unavailable) return new KeygateError('KG_ERR_STORE_UNAVAILABLE', undefined, { 'retry-after': String(r.retryAfterSec) });
  // The headers are written with the answer (forward/stage.ts, or the problem writer), in the
  // same writeHead call as everything else.
  ctx.limit = r;
  if (r.allowed) return undefined;
  return new KeygateError('KG_ERR_RATE_LIMITED', undefined, { 'retry-after': String(r.retryAfterSec) });
}

/** RateLimit-* (IETF draft) and the older X-RateLimit-* that existing clients read. */
export function appendRateLimitHeaders(out: string[], r: import('../vocabulary/limits.js').TakeResult): void {
  const limit = String(r.limit);
  const remaining = String(r.remaining);
  const reset = String(r.resetSec);
  out.push('ratelimit-limit', limit, 'ratelimit-remaining', remaining, 'ratelimit-reset', reset, 'x-ratelimit-limit', limit, 'x-ratelimit-remaining', remaining, 'x-ratelimit-reset', reset);
}

// ④ Limit: one token from the bucket of the credential (or its account, as the policy says).
// It runs before authorize, so that every answer to an authenticated request, a 403 included,
// carries RateLimit-* and probing for paths costs budget too. In a dry run the bucket is only
// looked at (peek), never spent.
import { KeygateError } from '../errors/keygate-error.js';
import type { Identified, Limited } from '../vocabulary/context.js';
import type { LimitAnswer, RateLimiter } from '../vocabulary/limits.js';
import type { Stage, Verdict } from '../vocabulary/stage.js';

function apply(ctx: Identified, r: LimitAnswer): Verdict {
  // failMode closed and the shared store unreachable: refuse rather than admit unlimited.
  if (r.unavailable) {
    ctx.limit = null;
    return new KeygateError('KG_ERR_STORE_UNAVAILABLE', undefined, { 'retry-after': String(r.retryAfterSec) });
  }
  // The headers go out with the answer, in the same writeHead as everything else.
  ctx.limit = r;
  return r.allowed ? undefined : new KeygateError('KG_ERR_RATE_LIMITED', undefined, { 'retry-after': String(r.retryAfterSec) });
}

export function limitStage(limiter: RateLimiter, mode: 'take' | 'peek' = 'take'): Stage<Identified, Limited> {
  return {
    name: 'limit',
    produced: (ctx) => ctx.limit !== undefined,
    run: (ctx) => {
      const policy = ctx.principal.policy;
      if (!policy) {
        ctx.limit = null;
        return undefined;
      }
      const key = ctx.principal.bucketKey;
      const r = mode === 'take' ? limiter.take(key, policy, ctx.nowMs) : limiter.peek(key, policy, ctx.nowMs);
      return r instanceof Promise ? r.then((res) => apply(ctx, res)) : apply(ctx, r);
    },
  };
}

// The headers keygate puts on every answer to a request it handled, its own refusals and the
// upstream's answers alike: the request id, the credential's RateLimit-* budget once the limit
// stage ran (IETF draft names and the older X-RateLimit-* that existing clients read), and the
// early expiry warning.
import type { RequestContext } from '../vocabulary/context.js';
import type { TakeResult } from '../vocabulary/limits.js';

export function appendRateLimitHeaders(out: string[], r: TakeResult): void {
  const limit = String(r.limit);
  const remaining = String(r.remaining);
  const reset = String(r.resetSec);
  out.push('ratelimit-limit', limit, 'ratelimit-remaining', remaining, 'ratelimit-reset', reset, 'x-ratelimit-limit', limit, 'x-ratelimit-remaining', remaining, 'x-ratelimit-reset', reset);
}

export function appendOwnHeaders(out: string[], ctx: RequestContext): string[] {
  out.push('x-request-id', ctx.requestId);
  if (ctx.limit) appendRateLimitHeaders(out, ctx.limit);
  if (ctx.expiresHeader) out.push('keygate-credential-expires', ctx.expiresHeader);
  return out;
}

// ③ Authorize: the request's method and normalized path must match a rule of one of the
// credential's effective scopes. In shadow mode a denial is logged and counted, not enforced.
import { KeygateError } from '../errors/keygate-error.js';
import type { RequestContext } from '../pipeline/context.js';

export function authorize(ctx: RequestContext): KeygateError | undefined {
  const grant = ctx.credential!.grant;
  const rule = grant.allows(ctx.method, ctx.path);
  if (rule) {
    ctx.rule = rule;
    ctx.reason = `scope ${rule.scope}: ${rule.text}`;
    return undefined;
  }
  const needed = ctx.rt.catalog.scopesAllowing(ctx.method, ctx.path);
  const detail = needed.length
    ? `${ctx.method} ${ctx.path} needs one of these scopes: ${needed.join(', ')}.`
    : `No scope allows ${ctx.method} ${ctx.path}.`;
  if (ctx.rt.config.authorization.mode === 'shadow') {
    ctx.shadowDenied = detail;
    ctx.reason = `shadow: would deny: ${detail}`;
    return undefined;
  }
  return new KeygateError('KG_ERR_SCOPE_DENIED', detail);
}

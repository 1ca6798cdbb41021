// ③ Authorize: the request's method and normalized path must match a rule of one of the
// credential's effective scopes. In shadow mode a denial is recorded (audit, metric), not
// enforced: how operators roll out new rules safely.
import { KeygateError } from '../errors/keygate-error.js';
import type { Limited } from '../vocabulary/context.js';
import type { Stage } from '../vocabulary/stage.js';
import type { ScopeCatalog } from './grants.js';

export function deniedDetail(method: string, path: string, needed: readonly string[]): string {
  return needed.length ? `${method} ${path} needs one of these scopes: ${needed.join(', ')}.` : `No scope allows ${method} ${path}.`;
}

export function authorizeStage(catalog: ScopeCatalog, mode: 'enforce' | 'shadow'): Stage<Limited> {
  return {
    name: 'authorize',
    run: (ctx) => {
      const rule = ctx.principal.grant.allows(ctx.method, ctx.path);
      if (rule) {
        ctx.rule = rule;
        ctx.reason = `scope ${rule.scope}: ${rule.text}`;
        return undefined;
      }
      const detail = deniedDetail(ctx.method, ctx.path, catalog.scopesAllowing(ctx.method, ctx.path));
      if (mode === 'shadow') {
        ctx.shadowDenied = detail;
        ctx.reason = `shadow: would deny: ${detail}`;
        return undefined;
      }
      return new KeygateError('KG_ERR_SCOPE_DENIED', detail);
    },
  };
}

// Routes: first match on the normalized path's prefix wins. Prefixes match whole segments
// (`/api` takes `/api` and `/api/x`, not `/apix`), unless the prefix ends with "/".
import type { RouteConfig } from '../config/schema.js';
import type { RouteInfo } from '../vocabulary/context.js';

export function routeInfo(index: number, cfg: RouteConfig): RouteInfo {
  return { index, pathPrefix: cfg.pathPrefix, public: cfg.public, timeoutMs: cfg.timeout, upstream: new URL(cfg.upstream).origin, allowOverrideHeaders: [...new Set(cfg.allowOverrideHeaders)] };
}

export function matchRoute(routes: readonly RouteInfo[], path: string): RouteInfo | undefined {
  for (const r of routes) {
    const p = r.pathPrefix;
    if (path.startsWith(p) && (p.endsWith('/') || path.length === p.length || path.charCodeAt(p.length) === 47)) return r;
  }
  return undefined;
}

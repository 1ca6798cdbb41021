// Routes: first match on the normalized path's prefix wins. Prefixes match whole segments
// (`/api` takes `/api` and `/api/x`, not `/apix`), unless the prefix ends with "/".
import type { RouteConfig } from '../config/schema.js';
import type { Upstream } from './upstream.js';

export interface CompiledRoute {
  readonly index: number;
  readonly pathPrefix: string;
  readonly public: boolean;
  readonly timeoutMs: number;
  readonly upstream: Upstream;
}

export function compileRoute(index: number, cfg: RouteConfig, upstream: Upstream): CompiledRoute {
  return { index, pathPrefix: cfg.pathPrefix, public: cfg.public, timeoutMs: cfg.timeout, upstream };
}

export function matchRoute(routes: readonly CompiledRoute[], path: string): CompiledRoute | undefined {
  for (const r of routes) {
    const p = r.pathPrefix;
    if (path.startsWith(p) && (p.endsWith('/') || path.length === p.length || path.charCodeAt(p.length) === 47)) return r;
  }
  return undefined;
}

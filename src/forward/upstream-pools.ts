// Upstream connections, one set per (protocol, origin, size): undici pools for HTTP/1.1, and
// node:http2 sessions for h2c and h2 (h2-sessions.ts). A reload reuses those whose route did
// not change, so keep-alive connections survive it. Those no route uses any more are closed
// gracefully after the reload.
import { Pool } from 'undici';
import { H2Sessions } from './h2-sessions.js';

export type UpstreamProtocol = 'http1' | 'h2c' | 'h2';

export interface Http1Upstream {
  readonly key: string;
  readonly origin: string;
  readonly protocol: 'http1';
  readonly pool: Pool;
}

export interface H2Upstream {
  readonly key: string;
  readonly origin: string;
  readonly protocol: 'h2c' | 'h2';
  readonly sessions: H2Sessions;
}

export type Upstream = Http1Upstream | H2Upstream;

const KEEP_ALIVE_MS = 4_000; // below Node's default server keepAliveTimeout (5 s)
const CONNECT_TIMEOUT_MS = 10_000;

export class UpstreamPools {
  private readonly pools = new Map<string, Upstream>();

  get(origin: string, connections: number, protocol: UpstreamProtocol = 'http1'): Upstream {
    const key = `${protocol}:${origin}#${connections}`;
    let u = this.pools.get(key);
    if (!u) {
      if (protocol === 'http1') {
        const pool = new Pool(origin, {
          connections,
          pipelining: 1,
          keepAliveTimeout: KEEP_ALIVE_MS,
          keepAliveMaxTimeout: 60_000,
          connect: { timeout: CONNECT_TIMEOUT_MS },
        });
        u = { key, origin, protocol, pool };
      } else {
        // Sessions connect lazily, on the first request.
        u = { key, origin, protocol, sessions: new H2Sessions(origin, connections) };
      }
      this.pools.set(key, u);
    }
    return u;
  }

  /** Close pools not in `used` (after a reload). */
  async retain(used: Iterable<Upstream>): Promise<void> {
    const keep = new Set([...used].map((u) => u.key));
    const closing: Promise<void>[] = [];
    for (const [key, u] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      if (u.protocol === 'http1') closing.push(u.pool.close().catch(() => undefined));
      else u.sessions.close();
    }
    await Promise.all(closing);
  }

  async closeAll(force = false): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(
      all.map((u) => {
        if (u.protocol !== 'http1') {
          if (force) u.sessions.destroy();
          else u.sessions.close();
          return undefined;
        }
        return (force ? u.pool.destroy() : u.pool.close()).catch(() => undefined);
      }),
    );
  }
}

// Upstream connection pools (undici). One pool per (origin, size); a reload reuses pools whose
// route did not change, so keep-alive connections survive it. Pools no route uses any more
// are closed gracefully after the reload.
import { Pool } from 'undici';

export interface Upstream {
  readonly key: string;
  readonly origin: string;
  readonly pool: Pool;
}

const KEEP_ALIVE_MS = 4_000; // below Node's default server keepAliveTimeout (5 s)
const CONNECT_TIMEOUT_MS = 10_000;

export class UpstreamPools {
  private readonly pools = new Map<string, Upstream>();

  get(origin: string, connections: number): Upstream {
    const key = `${origin}#${connections}`;
    let u = this.pools.get(key);
    if (!u) {
      const pool = new Pool(origin, {
        connections,
        pipelining: 1,
        keepAliveTimeout: KEEP_ALIVE_MS,
        keepAliveMaxTimeout: 60_000,
        connect: { timeout: CONNECT_TIMEOUT_MS },
      });
      this.pools.set(key, (u = { key, origin, pool }));
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
      closing.push(u.pool.close().catch(() => undefined));
    }
    await Promise.all(closing);
  }

  async closeAll(force = false): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((u) => (force ? u.pool.destroy() : u.pool.close()).catch(() => undefined)));
  }
}

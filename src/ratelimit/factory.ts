// Which limiter a config selects: buckets in this process's memory (or, with workers, the
// supervisor's, through `local`), or shared in Redis by every replica (store.redis), which
// falls back to `local` or refuses as failMode says.
import type { Logger } from 'pino';
import type { KeygateConfig } from '../config/schema.js';
import type { StoreHealth } from '../store/redis/health.js';
import type { RateLimiter } from '../vocabulary/limits.js';
import { MemoryRateLimiter } from './limiter.js';
import { RedisRateLimiter } from './redis-limiter.js';

export function createLimiter(config: Pick<KeygateConfig, 'store'>, deps: { health?: StoreHealth; logger?: Logger; maxKeys?: number; local?: RateLimiter } = {}): RateLimiter {
  const redis = config.store.redis;
  if (redis) return new RedisRateLimiter(redis, { health: deps.health, logger: deps.logger, fallback: deps.local });
  return deps.local ?? new MemoryRateLimiter(deps.maxKeys ?? 100_000);
}

// The one place that knows which backend a config selects. Everything else — the proxy, the
// admin API, the CLI, `keygate check` — takes the CredentialStore interface.
import type { Logger } from 'pino';
import type { KeygateConfig } from '../config/schema.js';
import { FileStore } from './file/file-store.js';
import { describeRedis } from './redis/client.js';
import { StoreHealth, type StoreObserver } from './redis/health.js';
import { RedisStore } from './redis/store.js';
import type { CredentialStore } from './types.js';

export interface StoreDeps {
  /** Reachability of a shared store, as its store and its limiter see it (one per process). */
  health?: StoreHealth;
  logger?: Logger;
  /** Who writes when an update names no actor: "replica:<host>", "cli:<user>". */
  actor?: string;
}

export function createStore(config: Pick<KeygateConfig, 'store'>, deps: StoreDeps = {}): CredentialStore {
  const redis = config.store.redis;
  if (redis) return new RedisStore(redis, { health: deps.health, logger: deps.logger, actor: deps.actor });
  return new FileStore(config.store.file);
}

/** The health of the shared store a config names; undefined for the file store. */
export function sharedStoreHealth(config: Pick<KeygateConfig, 'store'>, observer: StoreObserver, logger?: Logger): StoreHealth | undefined {
  const redis = config.store.redis;
  return redis ? new StoreHealth(describeRedis(redis), observer, logger) : undefined;
}

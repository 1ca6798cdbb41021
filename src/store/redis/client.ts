// Connections to Redis, built from store.redis. ioredis (not node-redis): it has auto-pipelining
// (every take issued in one event-loop tick leaves in one write), a per-command timeout, a
// switch that makes commands fail at once while disconnected instead of queueing (so a dead
// Redis never holds a request), reconnection with backoff and automatic re-subscription, and
// TLS through Node's own tls options.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type { Redis, RedisOptions } from 'ioredis';
import type { RedisConfig } from '../../config/schema.js';
import { KeygateFault } from '../../errors/fault.js';

export type { Redis };

/**
 * ioredis is loaded on the first connection: a CLI command or a proxy on the file store never
 * pays for its ~20 modules (a CLI command is a process start-up each time). It is CommonJS,
 * so a synchronous require keeps connect() synchronous.
 */
let ioredis: typeof import('ioredis').Redis | undefined;
function loadIoredis(): typeof import('ioredis').Redis {
  return (ioredis ??= (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis);
}

/** What a connection is for: each has its own socket, so one never waits behind another. */
export type ConnectionRole = 'store' | 'subscriber' | 'limiter';

export interface Endpoint {
  host: string;
  port: number;
  db: number;
  tls: boolean;
  username?: string;
  password?: string;
}

/** Host, port, database and credentials from the URL, with the config's username/password on top. */
export function parseRedisUrl(config: Pick<RedisConfig, 'url' | 'username' | 'password'>): Endpoint {
  const u = new URL(config.url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  const username = config.username ?? (u.username ? decodeURIComponent(u.username) : undefined);
  const password = config.password ?? (u.password ? decodeURIComponent(u.password) : undefined);
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : 6379,
    db,
    tls: u.protocol === 'rediss:',
    ...(username !== undefined && { username }),
    ...(password !== undefined && { password }),
  };
}

/** For logs and errors: never the user or the password. */
export function describeRedis(config: Pick<RedisConfig, 'url'>): string {
  const e = parseRedisUrl({ url: config.url, username: null, password: null });
  return `redis ${e.tls ? 'tls ' : ''}${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}/${e.db}`;
}

function tlsOptions(config: RedisConfig, endpoint: Endpoint): RedisOptions['tls'] {
  if (!endpoint.tls) return undefined;
  const t = config.tls;
  // SNI carries names only (RFC 6066); an IP address is checked against the IP SANs anyway.
  const servername = t?.servername ?? (isIP(endpoint.host) === 0 ? endpoint.host : undefined);
  return {
    ...(t?.ca && { ca: readFileSync(t.ca) }),
    ...(t?.cert && { cert: readFileSync(t.cert) }),
    ...(t?.key && { key: readFileSync(t.key) }),
    ...(servername !== undefined && { servername }),
  };
}

/** Reconnection delay: 50 ms doubling to 2 s, so a restarted Redis is found again within ~2 s. */
export function retryDelay(attempt: number): number {
  return Math.min(2_000, 50 * 2 ** Math.min(attempt, 6));
}

/**
 * One connection for `role`. Store and limiter connections refuse commands while disconnected
 * (no offline queue): the caller learns at once and falls back, instead of waiting. The
 * subscriber keeps its queue, so that SUBSCRIBE issued before the first connect is sent.
 */
export function connect(config: RedisConfig, role: ConnectionRole, name: string): Redis {
  const endpoint = parseRedisUrl(config);
  const options: RedisOptions = {
    host: endpoint.host,
    port: endpoint.port,
    db: endpoint.db,
    ...(endpoint.username !== undefined && { username: endpoint.username }),
    ...(endpoint.password !== undefined && { password: endpoint.password }),
    tls: tlsOptions(config, endpoint),
    // RESP2 keeps working with every Redis and Redis-compatible server and proxy (RESP3 needs HELLO).
    protocol: 2,
    connectionName: name,
    connectTimeout: config.connectTimeout,
    commandTimeout: role === 'limiter' ? config.limitTimeout : role === 'store' ? config.commandTimeout : undefined,
    enableOfflineQueue: role === 'subscriber',
    enableAutoPipelining: role === 'limiter',
    maxRetriesPerRequest: role === 'subscriber' ? null : 1,
    // A write whose reply was lost is not sent twice behind our back: the store decides (it
    // can tell whether its commit landed), the limiter counts a failure.
    autoResendUnfulfilledCommands: false,
    retryStrategy: retryDelay,
    lazyConnect: false,
  };
  const client = new (loadIoredis())(options);
  // Errors are reported through the callers' health tracking; an unhandled 'error' event would crash.
  client.on('error', () => undefined);
  return client;
}

/** Resolves when `client` is ready; rejects after `timeoutMs` with the last connection error. */
/** Redis out of reach: a 503 on the admin API, exit 5 in the CLI (errors/catalog.ts). */
const unavailable = (message: string) => new KeygateFault('KG_ERR_STORE_UNAVAILABLE', message);

export function whenReady(client: Redis, timeoutMs: number, what: string): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.reject(unavailable(`${what}: connection closed`));
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (err: Error) => (lastError = err);
    const done = (err?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      client.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onEnd = () => done(unavailable(`${what}: connection closed`));
    const timer = setTimeout(() => done(unavailable(`${what}: not reachable within ${timeoutMs} ms${lastError ? ` (${lastError.message})` : ''}`)), timeoutMs);
    client.on('ready', onReady);
    client.on('error', onError);
    client.on('end', onEnd);
  });
}

/** Closes a connection: QUIT when it is up (bounded), else at once. */
export async function disconnect(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    const quit = client.quit().catch(() => undefined);
    const bounded = new Promise<void>((r) => setTimeout(r, 500).unref());
    await Promise.race([quit, bounded]);
  }
  client.disconnect(false);
}

// Redis for the store tests: the shared server at 127.0.0.1:6379 under a key prefix of each
// test's own (deleted at the end), and a redis-server a test starts itself (a free port, AOF in
// a temp folder) when it must kill Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { configSchema, type RedisConfig } from '../../src/config/schema.js';
import { parseRate } from '../../src/config/units.js';
import type { OpContext } from '../../src/store/operations.js';

export const SHARED_REDIS = 'redis://127.0.0.1:6379/0';

export function testPrefix(): string {
  return `kgtest:${randomBytes(6).toString('hex')}:`;
}

/** store.redis as the schema fills it in, with `overrides`. */
export function redisConfig(overrides: Partial<Record<keyof RedisConfig, unknown>> & { prefix: string }): RedisConfig {
  const parsed = configSchema.parse({
    listen: { tls: { cert: 'x.crt', key: 'x.key' } },
    routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:1' }],
    store: { redis: { url: SHARED_REDIS, ...overrides } },
  });
  return parsed.store.redis!;
}

export function admin(url = SHARED_REDIS): Redis {
  const r = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1, protocol: 2 });
  r.on('error', () => undefined);
  return r;
}

/** Deletes every key under `prefix` (bounded scan). */
export async function deletePrefix(prefix: string, url = SHARED_REDIS): Promise<void> {
  const r = admin(url);
  try {
    let cursor = '0';
    for (let i = 0; i < 100_000; i++) {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) await r.del(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    r.disconnect();
  }
}

/** Every key under `prefix` with its value as text (strings, hashes, sorted sets). */
export async function dumpPrefix(prefix: string, url = SHARED_REDIS): Promise<Map<string, string>> {
  const r = admin(url);
  const out = new Map<string, string>();
  try {
    let cursor = '0';
    for (let i = 0; i < 100_000; i++) {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      for (const key of keys) {
        const type = await r.type(key);
        if (type === 'string') out.set(key, (await r.get(key)) ?? '');
        else if (type === 'hash') out.set(key, JSON.stringify(await r.hgetall(key)));
        else if (type === 'zset') out.set(key, JSON.stringify(await r.zrange(key, '0', '-1', 'WITHSCORES')));
        else out.set(key, `<${type}>`);
      }
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    r.disconnect();
  }
  return out;
}

export const OP_CONFIG: OpContext['config'] = { roles: { reader: ['things:read'] }, scopes: { 'things:read': ['GET /things/**'] }, policies: { default: { rate: parseRate('10/s')!, burst: 20, per: 'credential' } }, environment: null };

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A redis-server of the test's own: loopback, a free port, AOF (fsync always) in a temp folder. */
export class OwnRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'kg-redis-'));
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  /** `extraArgs(dir)`: more redis-server options (TLS, ACL users), given the temp folder. */
  static async start(extraArgs: (dir: string) => string[] = () => []): Promise<OwnRedis> {
    const port = await freePort();
    const r = new OwnRedis(port, []);
    (r as unknown as { extraArgs: string[] }).extraArgs = extraArgs(r.dir);
    try {
      await r.start();
    } catch (err) {
      await r.stop();
      throw err;
    }
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--logfile', join(this.dir, 'redis.log'), ...this.extraArgs];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    this.child = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = admin(this.url);
      try {
        if ((await r.ping()) === 'PONG') return;
      } catch {
        // not yet
      } finally {
        r.disconnect();
      }
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server on ${this.port} did not start`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  /** SIGSTOP / SIGCONT: a Redis that hangs (connections stay open, nothing answers). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGKILL: no shutdown save, no goodbye to clients. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

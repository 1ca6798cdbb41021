// Redis going away and coming back, on a redis-server this test starts itself (a free port, AOF
// with fsync always in a temp folder): killed with SIGKILL and restarted, followers report the
// outage, keep what they had (revocations included), reload when it is back and see new changes;
// the limiter follows failMode during the outage and is shared again afterwards, without a
// restart of anything. A hung Redis (SIGSTOP) costs a few bounded timeouts, then nothing.
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { eventually } from '../helpers/harness.js';
import { RedisRateLimiter } from '../../src/ratelimit/redis-limiter.js';
import { createAccount, createToken, revokeToken } from '../../src/store/operations.js';
import { bucketKey } from '../../src/store/redis/keys.js';
import { RedisStore } from '../../src/store/redis/store.js';
import type { BucketPolicy } from '../../src/vocabulary/limits.js';
import { record, TestClock } from './conformance.js';
import { admin, OwnRedis, redisConfig } from './redis-support.js';

vi.setConfig({ testTimeout: 60_000 });

const prefix = 'kgtest:restart:';
const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));
const p: BucketPolicy = { name: 'restart', ratePerMs: 2 ** -22, burst: 5, per: 'credential', rateText: '≈1/h' };
let redis: OwnRedis;
let writer: RedisStore;
const followers: Array<{ store: RedisStore; status: boolean[]; r: ReturnType<typeof record> }> = [];
let limitOpen: RedisRateLimiter;
let limitClosed: RedisRateLimiter;
let tokenA: string;
let tokenB: string;

const statusOf = (f: (typeof followers)[number]) => f.status[f.status.length - 1];
const tokenIn = (f: (typeof followers)[number], id: string) => f.r.state()?.tokens.find((t) => t.id === id);

beforeAll(async () => {
  redis = await OwnRedis.start();
  const config = redisConfig({ prefix, url: redis.url, connectTimeout: '500ms' });
  writer = new RedisStore(config, { actor: 'replica:writer' });
  await writer.update((d) => createAccount(d, { name: 'svc' }, clock.ctx()));
  tokenA = await writer.update((d) => createToken(d, { account: 'svc' }, clock.ctx()).record.id);
  tokenB = await writer.update((d) => createToken(d, { account: 'svc' }, clock.ctx()).record.id);
  await writer.update((d) => revokeToken(d, tokenA, 'leaked', clock.ctx()));
  for (let i = 0; i < 3; i++) {
    const store = new RedisStore(config);
    const status: boolean[] = [];
    store.follow({ onSnapshot: () => undefined, onChanges: () => undefined, onStatus: (up) => status.push(up) });
    followers.push({ store, status, r: record(store) });
  }
  const breaker = { failures: 3, openMs: 100, maxOpenMs: 400 };
  limitOpen = new RedisRateLimiter({ ...config, failMode: 'open' }, { breaker });
  limitClosed = new RedisRateLimiter({ ...config, failMode: 'closed' }, { breaker });
  await Promise.all([limitOpen.ready(), limitClosed.ready()]);
  await eventually(() => followers.every((f) => tokenIn(f, tokenA)?.status === 'revoked' && statusOf(f) === true), 5_000);
}, 30_000);

afterAll(async () => {
  for (const f of followers) await f.store.close();
  await writer?.close();
  await limitOpen?.close();
  await limitClosed?.close();
  await redis?.stop();
});

describe('Redis killed and restarted', () => {
  it('during the outage: followers say so and keep what they had; limits follow failMode; writes fail', async () => {
    expect((await limitClosed.take('k', p, Date.now())).allowed).toBe(true);
    const snapshotsBefore = followers.map((f) => f.r.events.filter((e) => e.type === 'snapshot').length);
    await redis.kill();

    await eventually(() => followers.every((f) => statusOf(f) === false), 5_000);
    // What was known before the outage still holds: A revoked, B active.
    for (const f of followers) {
      expect(tokenIn(f, tokenA)?.status).toBe('revoked');
      expect(tokenIn(f, tokenB)?.status).toBe('active');
    }
    // failMode closed: unavailable; failMode open: this replica's own bucket (full: allowed).
    await eventually(async () => (await limitClosed.take('k', p, Date.now())).unavailable === true, 5_000);
    await eventually(async () => {
      const r = await limitOpen.take('k-open', p, Date.now());
      return r.allowed && r.unavailable === undefined && r.remaining === p.burst - 1;
    }, 5_000);
    await expect(writer.update((d) => revokeToken(d, tokenB, undefined, clock.ctx()))).rejects.toThrow();

    // ---- back
    await redis.start();
    await eventually(() => followers.every((f) => statusOf(f) === true), 15_000);
    // Each follower reloaded (a reconnect means "read everything"), and the AOF kept it all.
    await eventually(() => followers.every((f, i) => f.r.events.filter((e) => e.type === 'snapshot').length > snapshotsBefore[i]!), 5_000);
    for (const f of followers) {
      expect(tokenIn(f, tokenA)?.status).toBe('revoked');
      expect(tokenIn(f, tokenB)?.status).toBe('active');
      expect(f.status).toEqual([true, false, true]);
    }
    // A revocation after the restart reaches everyone within a second.
    const t0 = performance.now();
    await eventually(async () => {
      try {
        await writer.update((d) => revokeToken(d, tokenB, 'after restart', clock.ctx()));
        return true;
      } catch {
        return false;
      }
    }, 10_000);
    const wrote = performance.now();
    await eventually(() => followers.every((f) => tokenIn(f, tokenB)?.status === 'revoked'), 5_000);
    expect(performance.now() - wrote).toBeLessThan(1_000);
    console.log(`after restart: writer reconnected in ${(wrote - t0).toFixed(0)} ms, revocation reached 3 followers in ${(performance.now() - wrote).toFixed(0)} ms`);

    // Limits are shared through Redis again: both limiters write the bucket there.
    await eventually(async () => (await limitClosed.take('k2', p, Date.now())).allowed === true, 10_000);
    await eventually(async () => {
      await limitOpen.take('k3', p, Date.now());
      const c = admin(redis.url);
      try {
        return (await c.exists(bucketKey(prefix, p.name, 'k3'))) === 1;
      } finally {
        c.disconnect();
      }
    }, 10_000);
  });

  it('a hung Redis (SIGSTOP): a few takes wait for the limit timeout, then the breaker answers at once', async () => {
    redis.pause();
    try {
      const answers: unknown[] = [];
      for (let i = 0; i < 3; i++) answers.push(await limitClosed.take('hung', p, Date.now()));
      expect(answers).toEqual(Array(3).fill(expect.objectContaining({ unavailable: true })));
      expect(limitClosed.breaker.state).toBe('open');
      const r = limitClosed.take('hung', p, Date.now());
      expect(r).not.toBeInstanceOf(Promise);
    } finally {
      redis.resume();
    }
    await eventually(async () => (await limitClosed.take('hung', p, Date.now())).allowed === true, 10_000);
  });
});

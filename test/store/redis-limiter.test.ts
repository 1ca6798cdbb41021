// The shared limiter: the script's arithmetic is takeToken's exactly (fed Redis's own clock),
// the answers and headers are the memory limiter's, refusals are answered locally until a token
// can be back, three limiters (three connections, as three replicas) on one key admit no more
// than burst + rate × t, and an unreachable Redis follows failMode without waiting.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { MemoryRateLimiter } from '../../src/ratelimit/limiter.js';
import { answerFor, RedisRateLimiter, type RedisRateLimiterOptions } from '../../src/ratelimit/redis-limiter.js';
import { fullBucket, takeToken, type BucketState } from '../../src/ratelimit/token-bucket.js';
import type { StoreOp } from '../../src/store/redis/health.js';
import { bucketKey } from '../../src/store/redis/keys.js';
import { runScript, TAKE } from '../../src/store/redis/scripts.js';
import type { RedisConfig } from '../../src/config/schema.js';
import type { BucketPolicy, LimitAnswer, TakeResult } from '../../src/vocabulary/limits.js';
import { admin, deletePrefix, freePort, redisConfig, testPrefix } from './redis-support.js';

vi.setConfig({ testTimeout: 60_000 });

const prefix = testPrefix();
const config = redisConfig({ prefix });
const limiters: RedisRateLimiter[] = [];
const open = async (c: RedisConfig = config, o: RedisRateLimiterOptions = {}) => {
  const l = new RedisRateLimiter(c, o);
  limiters.push(l);
  await l.ready();
  return l;
};
const policy = (name: string, perSecond: number, burst: number): BucketPolicy => ({ name, ratePerMs: perSecond / 1000, burst, per: 'credential', rateText: `${perSecond}/s` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  for (const l of limiters) await l.close();
  await deletePrefix(prefix);
});

describe('Redis limiter: the same bucket as in memory', () => {
  it('the script computes what takeToken computes, on Redis time, including the float tolerance', async () => {
    const client = admin();
    try {
      // 10/s refilled in steps of ~10-130 ms: the case where 0.1 + 0.1 + … falls short of 1.
      const p = policy('exact', 10, 5);
      const key = bucketKey(prefix, p.name, 'k');
      let state: BucketState | undefined;
      const outcomes = new Set<boolean>();
      for (let i = 0; i < 80; i++) {
        const [allowed, tokens, now] = (await runScript(client, TAKE, [key], [String(p.ratePerMs), String(p.burst), '1'])) as [number, string, string];
        const nowMs = Number(now);
        state ??= fullBucket(p, nowMs);
        const expected = takeToken(state, p, nowMs);
        expect(allowed === 1).toBe(expected.allowed);
        expect(Number(tokens)).toBe(state.tokens);
        expect(answerFor(allowed === 1, Number(tokens), p, true)).toEqual(expected);
        outcomes.add(expected.allowed);
        if (i % 4 === 3) await sleep(10 + (i % 13) * 10);
      }
      // Both branches were exercised.
      expect(outcomes).toEqual(new Set([true, false]));
    } finally {
      client.disconnect();
    }
  });

  it('answers (and so headers) are the memory limiter\'s: burst, then refusals with Retry-After', async () => {
    const l = await open();
    const memory = new MemoryRateLimiter();
    // About one an hour (a rate whose inverse is exact, 2^22 ms a token): no refill during the
    // test that could move a rounded-up second.
    const p: BucketPolicy = { ...policy('hdr', 1, 3), ratePerMs: 2 ** -22 };
    const now = Date.now();
    const got: LimitAnswer[] = [];
    const want: TakeResult[] = [];
    for (let i = 0; i < 5; i++) {
      got.push(await l.take('cred-1', p, now));
      want.push(memory.take('cred-1', p, now));
    }
    expect(got).toEqual(want);
    expect(got.map((r) => r.allowed)).toEqual([true, true, true, false, false]);
    expect(await l.peek('cred-1', p, now)).toEqual(memory.peek('cred-1', p, now));
    // Another key has its own bucket.
    expect((await l.take('cred-2', p, now)).allowed).toBe(true);
  });

  it('a refused bucket is answered locally until a token can be back, then Redis is asked again', async () => {
    const l = await open();
    const p: BucketPolicy = { ...policy('local', 1, 2), ratePerMs: 2 ** -22 };
    const now = Date.now();
    expect((await l.take('c', p, now)).allowed).toBe(true);
    expect((await l.take('c', p, now)).allowed).toBe(true);
    expect((await l.take('c', p, now)).allowed).toBe(false);
    // Remove the bucket in Redis: a call to Redis would now find it full.
    const client = admin();
    await client.del(bucketKey(prefix, p.name, 'c'));
    client.disconnect();
    const local = l.take('c', p, now + 1_000);
    expect(local).not.toBeInstanceOf(Promise);
    expect(local).toMatchObject({ allowed: false, remaining: 0 });
    // (1 - 1000 ms × 2^-22) × 2^22 ms = 4193.3 s
    expect((local as TakeResult).retryAfterSec).toBe(4194);
    // The twin: once a token would be back, the answer comes from Redis again (full bucket).
    const later = l.take('c', p, now + 2 ** 22);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toMatchObject({ allowed: true, remaining: 1 });
  });
});

describe('Redis limiter: one limit across replicas', () => {
  it('three limiters hammering one key admit at most burst + rate × t (+1)', async () => {
    const ls = [await open(), await open(), await open()];
    const p = policy('shared', 50, 10);
    const client = admin();
    const redisMs = async () => {
      const [s, us] = await client.time();
      return Number(s) * 1000 + Number(us) / 1000;
    };
    let admitted = 0;
    let answered = 0;
    let local = 0;
    const t0 = await redisMs();
    const end = Date.now() + 2_000;
    await Promise.all(
      ls.map(async (l) => {
        for (let round = 0; round < 100_000 && Date.now() < end; round++) {
          const batch = Array.from({ length: 8 }, () => l.take('hot', p, Date.now()));
          local += batch.filter((r) => !(r instanceof Promise)).length;
          for (const r of await Promise.all(batch)) {
            answered++;
            if (r.allowed) admitted++;
          }
          if (round % 50 === 49) await sleep(1);
        }
      }),
    );
    const t1 = await redisMs();
    client.disconnect();
    const bound = p.burst + p.ratePerMs * (t1 - t0);
    console.log(`3 limiters, 50/s burst 10, ${(t1 - t0).toFixed(0)} ms: admitted ${admitted} of ${answered} (bound ${bound.toFixed(1)}; ${local} refusals answered locally)`);
    expect(admitted).toBeLessThanOrEqual(Math.floor(bound) + 1);
    // The twin: the limit is not "refuse everything": it admits about what it may.
    expect(admitted).toBeGreaterThanOrEqual(p.burst + 0.5 * p.ratePerMs * (t1 - t0));
    expect(local).toBeGreaterThan(0);
  });
});

describe('Redis limiter: Redis unreachable', () => {
  const unreachable = async (failMode: 'open' | 'closed') => {
    const port = await freePort(); // nothing listens there
    const c = redisConfig({ prefix, url: `redis://127.0.0.1:${port}`, failMode, connectTimeout: '200ms' });
    const ups: boolean[] = [];
    const errors: StoreOp[] = [];
    const l = new RedisRateLimiter(c, { observer: { up: (u) => ups.push(u), error: (op) => errors.push(op) }, breaker: { failures: 3, openMs: 60_000, maxOpenMs: 60_000 } });
    limiters.push(l);
    return { l, ups, errors };
  };

  it('failMode closed: unavailable with Retry-After; once the breaker is open, no call at all', async () => {
    const { l, ups, errors } = await unreachable('closed');
    const p = policy('down', 10, 5);
    // Two failures: still closed, try again in a second; the third opens the breaker: wait for the probe.
    for (let i = 0; i < 2; i++) expect(await l.take('c', p, Date.now())).toEqual({ allowed: false, unavailable: true, retryAfterSec: 1 });
    expect(await l.take('c', p, Date.now())).toEqual({ allowed: false, unavailable: true, retryAfterSec: 60 });
    expect(l.breaker.state).toBe('open');
    const r = l.take('c', p, Date.now());
    // Answered synchronously: no timeout, no promise, no Redis call.
    expect(r).not.toBeInstanceOf(Promise);
    expect(r).toMatchObject({ allowed: false, unavailable: true });
    expect((r as { retryAfterSec: number }).retryAfterSec).toBeGreaterThanOrEqual(59);
    expect(errors).toEqual(['limit', 'limit', 'limit']);
    expect(ups).toEqual([false]);
  });

  it('failMode open: this replica\'s memory limiter answers, with its usual limits', async () => {
    const { l } = await unreachable('open');
    const p: BucketPolicy = { ...policy('down-open', 1, 3), ratePerMs: 2 ** -22 };
    const memory = new MemoryRateLimiter();
    const now = Date.now();
    for (let i = 0; i < 5; i++) expect(await l.take('c', p, now)).toEqual(memory.take('c', p, now));
    expect(l.breaker.state).toBe('open');
  });
});

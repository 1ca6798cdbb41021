// The token bucket is pure: the clock is a parameter, so every timing question is answered
// exactly with a fake clock instead of sleeping.
import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from '../../src/ratelimit/limiter.js';
import { fullBucket, takeToken, type BucketPolicy } from '../../src/ratelimit/token-bucket.js';

/** `count` per `windowMs`, bucket size `burst`. */
function policy(count: number, windowMs: number, burst: number, name = 'test'): BucketPolicy {
  return { name, ratePerMs: count / windowMs, burst, per: 'credential', rateText: `${count}/${windowMs}ms` };
}

const T0 = 1_700_000_000_000;

describe('takeToken', () => {
  it('starts full: a burst of exactly `burst` requests passes, the next is refused', () => {
    const p = policy(1, 1_000, 5);
    const s = fullBucket(p, T0);
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = takeToken(s, p, T0);
      expect(r.allowed).toBe(true);
      expect(r.limit).toBe(5);
      expect(r.retryAfterSec).toBe(0);
      remaining.push(r.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const refused = takeToken(s, p, T0);
    expect(refused.allowed).toBe(false);
    expect(refused.remaining).toBe(0);
  });

  it('says how long to wait when refused, never less than 1 second', () => {
    const fast = policy(100, 1_000, 1); // a token back every 10 ms
    const s = fullBucket(fast, T0);
    takeToken(s, fast, T0);
    const r = takeToken(s, fast, T0);
    expect(r.allowed).toBe(false);
    expect(r.retryAfterSec).toBe(1);

    const slow = policy(1, 60_000, 1); // one per minute
    const s2 = fullBucket(slow, T0);
    takeToken(s2, slow, T0);
    expect(takeToken(s2, slow, T0).retryAfterSec).toBe(60);
    expect(takeToken(s2, slow, T0 + 15_000).retryAfterSec).toBe(45);
    expect(takeToken(s2, slow, T0 + 59_001).retryAfterSec).toBe(1);
  });

  it('refills at the rate: one token per interval, not before', () => {
    const p = policy(2, 1_000, 2); // a token every 500 ms
    const s = fullBucket(p, T0);
    takeToken(s, p, T0);
    takeToken(s, p, T0);
    expect(takeToken(s, p, T0 + 499).allowed).toBe(false);
    expect(takeToken(s, p, T0 + 500).allowed).toBe(true);
    expect(takeToken(s, p, T0 + 500).allowed).toBe(false);
    expect(takeToken(s, p, T0 + 1_000).allowed).toBe(true);
  });

  it('admits exactly the rate over a long run of steady traffic', () => {
    const p = policy(10, 1_000, 1);
    const s = fullBucket(p, T0);
    let allowed = 0;
    // 100 requests per second for 10 seconds against 10/s: 1 from the full bucket + 10/s.
    for (let t = 0; t < 10_000; t += 10) if (takeToken(s, p, T0 + t).allowed) allowed++;
    expect(allowed).toBe(100);
  });

  it('counts refilled tokens exactly in RateLimit-Remaining, despite floating-point refills', () => {
    const p = policy(10, 1_000, 5);
    // Three tokens as floating-point refills leave them: ten steps of 0.1 are 0.9999999999999999.
    let tenths = 0;
    for (let i = 0; i < 10; i++) tenths += 0.1;
    const s = { tokens: tenths * 3, updatedMs: T0 };
    expect(s.tokens).toBeLessThan(3);
    const r = takeToken(s, p, T0);
    expect(r.allowed).toBe(true);
    expect(r.remaining).toBe(2);
  });

  it('never holds more than `burst`, however long it stays idle', () => {
    const p = policy(10, 1_000, 3);
    const s = fullBucket(p, T0);
    takeToken(s, p, T0);
    const later = T0 + 86_400_000;
    const results = Array.from({ length: 4 }, () => takeToken(s, p, later));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(s.tokens).toBeLessThan(1);
  });

  it('reports RateLimit-Reset as the seconds until the bucket is full again', () => {
    const p = policy(1, 1_000, 10);
    const s = fullBucket(p, T0);
    expect(takeToken(s, p, T0).resetSec).toBe(1); // 1 missing at 1/s
    for (let i = 0; i < 4; i++) takeToken(s, p, T0);
    const r = takeToken(s, p, T0); // 6 taken
    expect(r.remaining).toBe(4);
    expect(r.resetSec).toBe(6);
    // 2.5 s later 2.5 tokens are back, one is taken: 4.5 missing → 5 s.
    const r2 = takeToken(s, p, T0 + 2_500);
    expect(r2.remaining).toBe(5);
    expect(r2.resetSec).toBe(5);
  });

  it('does not refill twice when the clock steps back and catches up', () => {
    const p = policy(1, 1_000, 1);
    const s = fullBucket(p, T0 + 10_000);
    expect(takeToken(s, p, T0 + 10_000).allowed).toBe(true);
    // The clock steps back 10 s (NTP), then returns to where it was: no time has passed for
    // the bucket, so it must still be empty.
    expect(takeToken(s, p, T0).allowed).toBe(false);
    expect(takeToken(s, p, T0 + 10_000).allowed).toBe(false);
    expect(takeToken(s, p, T0 + 11_000).allowed).toBe(true);
  });
});

describe('MemoryRateLimiter', () => {
  it('keeps one bucket per key', () => {
    const lim = new MemoryRateLimiter();
    const p = policy(1, 60_000, 2);
    expect(lim.take('c:tok_a', p, T0).allowed).toBe(true);
    expect(lim.take('c:tok_a', p, T0).allowed).toBe(true);
    expect(lim.take('c:tok_a', p, T0).allowed).toBe(false);
    // Another credential has its own, full bucket.
    expect(lim.take('c:tok_b', p, T0).allowed).toBe(true);
    expect(lim.size).toBe(2);
  });

  it('keys buckets by policy too: a changed policy starts a fresh bucket', () => {
    const lim = new MemoryRateLimiter();
    const a = policy(1, 60_000, 1, 'a');
    const b = policy(1, 60_000, 1, 'b');
    expect(lim.take('c:tok_a', a, T0).allowed).toBe(true);
    expect(lim.take('c:tok_a', a, T0).allowed).toBe(false);
    expect(lim.take('c:tok_a', b, T0).allowed).toBe(true);
    expect(lim.take('c:tok_a', b, T0).allowed).toBe(false);
  });

  it('does not confuse a key with a policy name that ends like it', () => {
    const lim = new MemoryRateLimiter();
    const p1 = policy(1, 60_000, 1, 'x');
    const p2 = policy(1, 60_000, 1, 'x:y');
    expect(lim.take('y:z', p1, T0).allowed).toBe(true);
    expect(lim.take('z', p2, T0).allowed).toBe(true);
  });

  it('never grows beyond its maximum number of keys, evicting the least recently used', () => {
    const lim = new MemoryRateLimiter(100);
    const p = policy(1, 60_000, 1);
    lim.take('hot', p, T0); // empties the bucket of "hot"
    for (let i = 0; i < 1_000; i++) {
      lim.take(`ip:${i}`, p, T0);
      // "hot" keeps being used, so it is never the least recently used and keeps its state.
      if (i % 10 === 0) expect(lim.take('hot', p, T0).allowed).toBe(false);
      expect(lim.size).toBeLessThanOrEqual(100);
    }
    expect(lim.size).toBe(100);
    // The first keys were evicted: their buckets come back full (errs towards admitting).
    expect(lim.take('ip:0', p, T0).allowed).toBe(true);
    expect(lim.take('ip:999', p, T0).allowed).toBe(false);
  });

  it('forgets everything on close', async () => {
    const lim = new MemoryRateLimiter();
    lim.take('a', policy(1, 1_000, 1), T0);
    await lim.close();
    expect(lim.size).toBe(0);
  });
});

// The worker rate limits without Redis: N workers, each a LeasedRateLimiter, leasing from one
// LimitCoordinator over an asynchronous channel that answers in a scrambled order, with a fake
// clock. The pod must admit at most burst + rate × t over every interval (the bound of
// docs/workers.md), and refuse early by at most 1.5 leases per worker.
import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from '../../src/ratelimit/limiter.js';
import type { BucketPolicy, LimitAnswer } from '../../src/vocabulary/limits.js';
import { LimitCoordinator, leaseSize, MAX_LEASE } from '../../src/workers/coordinator.js';
import { LeasedRateLimiter, type LeaseTransport } from '../../src/workers/leased-limiter.js';

const T0 = 1_700_000_000_000;

function policy(perSecond: number, burst: number, name = 'p'): BucketPolicy {
  return { name, ratePerMs: perSecond / 1000, burst, per: 'credential', rateText: `${perSecond}/s` };
}

/** A deterministic pseudo-random sequence (tests never use Math.random). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

interface Pod {
  clock: { now: number };
  coordinator: LimitCoordinator;
  workers: LeasedRateLimiter[];
  calls: number[];
}

/** N workers; each IPC answer arrives after 0–3 event-loop turns, so answers overtake each other. */
function pod(n: number, seed: number, opts: { leaseMs?: number; transport?: (w: number) => LeaseTransport } = {}): Pod {
  const clock = { now: T0 };
  const random = rng(seed);
  const coordinator = new LimitCoordinator({ workers: n, now: () => clock.now, leaseMs: opts.leaseMs });
  const calls = Array.from({ length: n }, () => 0);
  const workers = Array.from({ length: n }, (_, i) => {
    const transport: LeaseTransport = opts.transport?.(i) ?? {
      lease: async (key, p, held, want) => {
        calls[i]!++;
        await turns(Math.floor(random() * 4));
        return coordinator.lease(i + 1, key, p, held, want);
      },
      peek: async (key, p) => coordinator.peek(key, p),
    };
    return new LeasedRateLimiter(transport, { workers: n, fallback: new MemoryRateLimiter() });
  });
  return { clock, coordinator, workers, calls };
}

const allowed = async (a: LimitAnswer | Promise<LimitAnswer>) => (await a).allowed;

/** Every interval between two admissions holds at most burst + rate × its length (+1 for the first). */
function worstExcess(times: number[], p: BucketPolicy): number {
  const t = [...times].sort((a, b) => a - b);
  let worst = -Infinity;
  for (let i = 0; i < t.length; i++) {
    for (let j = i; j < t.length; j++) {
      const admitted = j - i + 1;
      worst = Math.max(worst, admitted - (p.burst + (t[j]! - t[i]!) * p.ratePerMs));
    }
  }
  return worst;
}

describe('leaseSize', () => {
  it('is a quarter of the burst shared among the workers, at least 1, at most MAX_LEASE', () => {
    expect(leaseSize(10, 2)).toBe(1);
    expect(leaseSize(3, 2)).toBe(1);
    expect(leaseSize(200, 2)).toBe(25);
    expect(leaseSize(1_000_000, 2)).toBe(MAX_LEASE);
    expect(leaseSize(200, 1)).toBe(50);
  });
});

describe('workers sharing one bucket through the coordinator', () => {
  it.each([
    ['a small burst (one-token leases), 2 workers', 2, policy(5, 10), 1],
    ['a small burst, 4 workers', 4, policy(2, 12), 2],
    ['a large burst (leases of 25), 2 workers', 2, policy(50, 200), 3],
    ['a large burst (leases of 64), 4 workers', 4, policy(100, 1200), 4],
  ])('%s: never more than burst + rate × t over any interval', async (_what, n, p, seed) => {
    const { clock, workers } = pod(n, seed);
    const random = rng(seed * 7919);
    const admittedAt: number[] = [];
    let refused = 0;
    // Bursts of concurrent requests on random workers, the clock moving 0–40 ms between them.
    for (let step = 0; step < 150; step++) {
      clock.now += Math.floor(random() * 40);
      const at = clock.now;
      const wave = Array.from({ length: 1 + Math.floor(random() * 30) }, () => workers[Math.floor(random() * n)]!.take('tok', p, at));
      for (const ok of await Promise.all(wave.map(allowed))) {
        if (ok) admittedAt.push(at);
        else refused++;
      }
    }
    expect(refused).toBeGreaterThan(0); // the load was over the limit
    expect(worstExcess(admittedAt, p)).toBeLessThanOrEqual(1e-6);
    // …and not far under it: over the whole run, at most 1.5 leases per worker were held back.
    const span = (admittedAt.at(-1)! - T0) * p.ratePerMs;
    expect(admittedAt.length).toBeGreaterThanOrEqual(Math.floor(p.burst + span) - n * Math.floor(1.5 * leaseSize(p.burst, n)) - 1);
  });

  it('tokens leased and not yet spent are not refilled behind the worker\'s back (no overshoot)', async () => {
    // Worker 0 holds most of a lease while the bucket refills; then both spend at one instant.
    // Without the coordinator's cap the bucket would be full again and the two together would
    // admit burst + the held lease at once.
    const p = policy(1_000, 400);
    const { workers, clock } = pod(2, 8);
    const admittedAt: number[] = [];
    const spend = async (w: number, n: number) => {
      for (let i = 0; i < n; i++) if (await allowed(workers[w]!.take('tok', p, clock.now))) admittedAt.push(clock.now);
    };
    await spend(0, 1);
    await spend(1, 500);
    clock.now += 900;
    const before = admittedAt.length;
    await spend(0, 60);
    await spend(1, 600);
    expect(admittedAt.length - before).toBeLessThanOrEqual(p.burst);
    expect(worstExcess(admittedAt, p)).toBeLessThanOrEqual(1e-6);
  });

  it('a first burst of concurrent requests on one worker admits exactly the burst', async () => {
    const p = policy(1, 50);
    const { workers } = pod(2, 9);
    const answers = await Promise.all(Array.from({ length: 80 }, () => workers[0]!.take('tok', p, T0)));
    expect(answers.filter((a) => a.allowed)).toHaveLength(50);
    const refused = answers.find((a) => !a.allowed)!;
    expect(refused).toMatchObject({ limit: 50, remaining: 0 });
    expect(refused.retryAfterSec).toBeGreaterThanOrEqual(1);
  });

  it('without the coordinator (each worker its own bucket) the same load would admit twice the burst', async () => {
    const p = policy(1, 20);
    const own = [new MemoryRateLimiter(), new MemoryRateLimiter()];
    let admitted = 0;
    for (let i = 0; i < 60; i++) if (own[i % 2]!.take('tok', p, T0).allowed) admitted++;
    expect(admitted).toBe(40);
    const { workers } = pod(2, 11);
    const shared = await Promise.all(Array.from({ length: 60 }, (_, i) => workers[i % 2]!.take('tok', p, T0)));
    expect(shared.filter((a) => a.allowed)).toHaveLength(20);
  });

  it('serves most requests from the lease: one IPC round trip per lease, not per request', async () => {
    const p = policy(100_000, 100_000);
    const { workers, calls, clock } = pod(2, 5);
    for (let i = 0; i < 2_000; i++) {
      clock.now += 1;
      expect(await allowed(workers[i % 2]!.take('tok', p, clock.now))).toBe(true);
    }
    const perLease = leaseSize(p.burst, 2);
    expect(calls[0]! + calls[1]!).toBeLessThanOrEqual(Math.ceil(2_000 / perLease) + 4);
  });

  it('answers a known-empty bucket locally, without asking, until a token can be back', async () => {
    const p = policy(1, 2);
    const { workers, calls, clock } = pod(2, 3);
    expect(await allowed(workers[0]!.take('tok', p, clock.now))).toBe(true);
    expect(await allowed(workers[0]!.take('tok', p, clock.now))).toBe(true);
    expect(await allowed(workers[0]!.take('tok', p, clock.now))).toBe(false);
    const asked = calls[0]!;
    for (let i = 0; i < 50; i++) expect(workers[0]!.take('tok', p, clock.now + 10)).toMatchObject({ allowed: false });
    expect(calls[0]).toBe(asked);
    clock.now += 1_001;
    expect(await allowed(workers[0]!.take('tok', p, clock.now))).toBe(true);
  });

  it('a lease expires: the quiet worker spends nothing of it after leaseMs, and its tokens count free again', async () => {
    const p = policy(1, 400); // leases of 50 for 2 workers
    const { workers, coordinator, clock } = pod(2, 4, { leaseMs: 1_000 });
    expect(await allowed(workers[0]!.take('tok', p, clock.now))).toBe(true);
    // Counted as leased until worker 0 says what it spent (it asks again) or the lease ends.
    expect(coordinator.outstanding('tok', p)).toBe(50);
    // Worker 1 drains the rest; the 49 left with worker 0 are not its to spend.
    let admitted = 0;
    for (let i = 0; i < 400; i++) if (await allowed(workers[1]!.take('tok', p, clock.now))) admitted++;
    expect(admitted).toBe(400 - 50);
    // After the lease's end (plus the coordinator's grace), worker 0 has nothing left…
    clock.now += 1_200;
    const late = await workers[0]!.take('tok', p, clock.now);
    // …it asks again and gets what 1.2 s of refill gave (one token), not its old 49.
    expect(late.allowed).toBe(true);
    expect(await allowed(workers[0]!.take('tok', p, clock.now))).toBe(false);
  });

  it('falls back to the worker\'s own buckets when the supervisor does not answer', async () => {
    const p = policy(1, 3);
    const dead: LeaseTransport = { lease: () => Promise.reject(new Error('channel closed')), peek: () => Promise.reject(new Error('channel closed')) };
    const { workers } = pod(1, 1, { transport: () => dead });
    const answers = await Promise.all(Array.from({ length: 5 }, () => workers[0]!.take('tok', p, T0)));
    expect(answers.map((a) => a.allowed)).toEqual([true, true, true, false, false]);
    expect(await workers[0]!.peek('tok', p, T0)).toMatchObject({ allowed: false, remaining: 0 });
  });

  it('peek shows the bucket without taking from it', async () => {
    const p = policy(1, 5);
    const { workers } = pod(2, 6);
    expect(await workers[1]!.peek('tok', p, T0)).toMatchObject({ allowed: true, remaining: 5 });
    await workers[0]!.take('tok', p, T0);
    expect(await workers[1]!.peek('tok', p, T0)).toMatchObject({ allowed: true, remaining: 4 });
    expect(await workers[1]!.peek('tok', p, T0)).toMatchObject({ remaining: 4 });
  });
});

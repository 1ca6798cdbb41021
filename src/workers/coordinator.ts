// The rate-limit coordinator: the one bucket per policy and key that every worker takes from
// when there is no Redis. It runs in the supervisor and hands out tokens in small leases, so
// that a worker asks over IPC once per lease, not once per request.
//
// Why the limit holds exactly (no overshoot), not "within N leases": the coordinator knows
// how many leased tokens each worker may still spend (`out`), and refills the bucket only up
// to `burst − out`. So the tokens in the bucket plus every token leased and not yet spent are
// never more than `burst`, and over any interval of length t the workers together admit at
// most `burst + rate × t` — the single-process guarantee. A worker reports what it still
// holds each time it asks; a lease it never reports again expires (`leaseMs`), on the worker
// (it stops spending) before the coordinator counts the tokens free (+ `graceMs`).
// The price is the reverse error: tokens leased to a worker that then gets no traffic are not
// spendable elsewhere until it asks again or the lease expires — at most one lease per worker
// per bucket (see leaseSize), so a client is refused early by at most N leases.
import { LRUCache } from 'lru-cache';
import type { PolicyWire } from './protocol.js';

/** Same tolerance as token-bucket.ts: refills in floating point must not lose a token. */
const EPSILON = 1e-9;

export interface Grant {
  granted: number;
  /** Tokens left in the bucket after the grant (excluding every worker's lease). */
  tokens: number;
  atMs: number;
  /** The worker spends nothing of this lease (or what it held before) from this time on. */
  expiresAtMs: number;
}

interface Outstanding {
  n: number;
  expiresAtMs: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
  out: Map<number, Outstanding>;
}

export interface CoordinatorOptions {
  workers: number;
  now?: () => number;
  /** How long a lease may be spent. Default 1000 ms. */
  leaseMs?: number;
  /** Extra time before expired leases count as free again (clock reads on both sides). Default 100 ms. */
  graceMs?: number;
  /** Buckets kept (LRU); an evicted bucket comes back full, as with the memory limiter. Default 100000. */
  maxKeys?: number;
}

/** Largest lease: past this the IPC cost per request is already negligible. */
export const MAX_LEASE = 64;

/**
 * Tokens per lease: a quarter of the burst shared among the workers (at least 1, at most
 * MAX_LEASE). Small against the burst so that no worker sits on much of it; one token for
 * small bursts, where every request asks (those are low-rate policies).
 */
export function leaseSize(burst: number, workers: number): number {
  return Math.max(1, Math.min(MAX_LEASE, Math.floor(burst / (4 * Math.max(1, workers)))));
}

export class LimitCoordinator {
  private readonly buckets: LRUCache<string, Bucket>;
  private readonly now: () => number;
  private readonly leaseMs: number;
  private readonly graceMs: number;

  constructor(private readonly opts: CoordinatorOptions) {
    this.now = opts.now ?? Date.now;
    this.leaseMs = opts.leaseMs ?? 1_000;
    this.graceMs = opts.graceMs ?? 100;
    this.buckets = new LRUCache({ max: opts.maxKeys ?? 100_000 });
  }

  /**
   * Grants `worker` tokens from bucket `key`: one lease, or as many as it has requests waiting
   * (`want`) when that is more — those are spent the moment they arrive. `held` is what the
   * worker still has of earlier leases.
   */
  lease(worker: number, key: string, policy: PolicyWire, held: number, want = 1): Grant {
    const now = this.now();
    const b = this.bucket(key, policy, now);
    // What the worker reports replaces what was recorded for it: it spent the difference. (A
    // worker has at most one request in flight per bucket, so no grant is on its way to it.)
    if (held > 0) b.out.set(worker, { n: held, expiresAtMs: b.out.get(worker)?.expiresAtMs ?? now + this.leaseMs });
    else b.out.delete(worker);
    this.refill(b, policy, now);
    const size = Math.max(leaseSize(policy.burst, this.opts.workers), Math.min(Math.floor(want), policy.burst));
    const granted = Math.min(size, Math.floor(b.tokens + EPSILON));
    const expiresAtMs = now + this.leaseMs;
    if (granted > 0) {
      b.tokens = Math.max(0, b.tokens - granted);
      // The worker's earlier tokens expire with the new lease (it keeps one pool per bucket).
      b.out.set(worker, { n: held + granted, expiresAtMs });
    }
    return { granted, tokens: b.tokens, atMs: now, expiresAtMs };
  }

  /** The bucket as it stands (explain), without taking or leasing. */
  peek(key: string, policy: PolicyWire): { tokens: number; atMs: number } {
    const now = this.now();
    const b = this.buckets.peek(this.keyOf(key, policy));
    if (!b) return { tokens: policy.burst, atMs: now };
    const copy: Bucket = { tokens: b.tokens, updatedMs: b.updatedMs, out: new Map(b.out) };
    this.refill(copy, policy, now);
    return { tokens: copy.tokens, atMs: now };
  }

  /** Tokens leased and not yet reported spent or expired, for `key` (tests, explain). */
  outstanding(key: string, policy: PolicyWire): number {
    const b = this.buckets.peek(this.keyOf(key, policy));
    return b ? sumOut(b) : 0;
  }

  get size(): number {
    return this.buckets.size;
  }

  private keyOf(key: string, policy: PolicyWire): string {
    // As in the memory and Redis limiters: the policy name is part of the key, and a policy
    // whose rate changed on reload keeps its bucket and refills at the new rate.
    return policy.name + '\u0000' + key;
  }

  private bucket(key: string, policy: PolicyWire, now: number): Bucket {
    const k = this.keyOf(key, policy);
    let b = this.buckets.get(k);
    if (!b) this.buckets.set(k, (b = { tokens: policy.burst, updatedMs: now, out: new Map() }));
    return b;
  }

  /** Drops expired leases, then refills up to what the outstanding leases leave of the burst. */
  private refill(b: Bucket, policy: PolicyWire, now: number): void {
    for (const [w, o] of b.out) if (o.expiresAtMs + this.graceMs <= now) b.out.delete(w);
    const cap = Math.max(0, policy.burst - sumOut(b));
    const elapsed = Math.max(0, now - b.updatedMs);
    // Capped even below what the bucket held: lowering only ever refuses, never admits more.
    b.tokens = Math.min(cap, b.tokens + elapsed * policy.ratePerMs);
    if (now > b.updatedMs) b.updatedMs = now;
  }
}

function sumOut(b: Bucket): number {
  let n = 0;
  for (const o of b.out.values()) n += o.n;
  return n;
}

// Rate limits shared by every replica: each bucket lives in Redis and one server-side script
// refills and takes in one atomic round trip, on Redis's clock (TIME), so replicas whose clocks
// disagree still share one bucket exactly. The arithmetic is takeToken's (token-bucket.ts) and
// the answer is built by the same code, so headers are the same as with the memory limiter.
//
// Two things keep Redis off the path of most refusals and of every outage:
// - a refused bucket is remembered locally ("empty until T"): until then, no replica can take
//   from it either (a token only comes back with time), so the refusal is answered here;
// - a circuit breaker: after a few failures, no call goes out until the next probe, and the
//   answer follows failMode (closed: unavailable; open: this replica's own memory limiter).
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { RedisConfig } from '../config/schema.js';
import type { Logger } from 'pino';
import { CircuitBreaker, type BreakerOptions } from '../store/breaker.js';
import { connect, describeRedis, disconnect, whenReady, type Redis } from '../store/redis/client.js';
import { StoreHealth, type StoreObserver } from '../store/redis/health.js';
import { bucketKey } from '../store/redis/keys.js';
import { runScript, TAKE } from '../store/redis/scripts.js';
import type { BucketPolicy, LimitAnswer, LimiterUnavailable, RateLimiter, TakeResult } from '../vocabulary/limits.js';
import { MemoryRateLimiter } from './limiter.js';
import { peekToken } from './token-bucket.js';

export interface RedisRateLimiterOptions {
  /** Shared with the RedisStore, so that both report one reachability. */
  health?: StoreHealth;
  /** Used when no `health` is given. */
  observer?: StoreObserver;
  logger?: Logger;
  /** Answers with failMode open while Redis cannot be reached. Default a MemoryRateLimiter. */
  fallback?: RateLimiter;
  breaker?: Omit<BreakerOptions, 'onChange'>;
  /** Refused buckets remembered locally. Default 10000. */
  maxBlocked?: number;
}

interface Blocked {
  tokens: number;
  atMs: number;
  ratePerMs: number;
  burst: number;
}

export class RedisRateLimiter implements RateLimiter {
  readonly description: string;
  readonly health: StoreHealth;
  readonly breaker: CircuitBreaker;
  private readonly client: Redis;
  private readonly fallback: RateLimiter;
  private readonly blocked: LRUCache<string, Blocked>;

  constructor(
    private readonly config: RedisConfig,
    opts: RedisRateLimiterOptions = {},
  ) {
    this.description = describeRedis(config);
    this.health = opts.health ?? new StoreHealth(this.description, opts.observer, opts.logger);
    this.fallback = opts.fallback ?? new MemoryRateLimiter();
    this.blocked = new LRUCache({ max: opts.maxBlocked ?? 10_000 });
    const logger = opts.logger;
    this.breaker = new CircuitBreaker({
      ...opts.breaker,
      onChange: (state) => {
        if (state === 'open') logger?.warn({ store: this.description, failMode: config.failMode }, `rate limits: Redis unreachable, ${config.failMode === 'open' ? 'each replica limits on its own' : 'limited requests are refused'} until it answers again`);
        else if (state === 'closed') logger?.info({ store: this.description }, 'rate limits: shared again through Redis');
      },
    });
    this.client = connect(config, 'limiter', `keygate:limit:${process.pid}:${randomBytes(4).toString('hex')}`);
  }

  /** Waits (bounded by connectTimeout) for the first connection; false if Redis did not answer. */
  async ready(): Promise<boolean> {
    return whenReady(this.client, this.config.connectTimeout, this.description).then(
      () => true,
      () => false,
    );
  }

  take(key: string, policy: BucketPolicy, nowMs: number): LimitAnswer | Promise<LimitAnswer> {
    const k = policy.name + '\u0000' + key;
    const b = this.blocked.get(k);
    if (b !== undefined) {
      if (b.ratePerMs === policy.ratePerMs && b.burst === policy.burst) {
        const r = peekToken({ tokens: b.tokens, updatedMs: b.atMs }, policy, nowMs);
        if (!r.allowed) return r;
      }
      this.blocked.delete(k);
    }
    return this.ask(k, key, policy, nowMs, true);
  }

  peek(key: string, policy: BucketPolicy, nowMs: number): LimitAnswer | Promise<LimitAnswer> {
    return this.ask(policy.name + '\u0000' + key, key, policy, nowMs, false);
  }

  async close(): Promise<void> {
    this.blocked.clear();
    await disconnect(this.client);
    await this.fallback.close();
  }

  private ask(k: string, key: string, policy: BucketPolicy, nowMs: number, take: boolean): LimitAnswer | Promise<LimitAnswer> {
    if (!this.breaker.allow()) return this.unreachable(key, policy, nowMs, take);
    return runScript(this.client, TAKE, [bucketKey(this.config.prefix, policy.name, key)], [String(policy.ratePerMs), String(policy.burst), take ? '1' : '0']).then(
      (reply) => {
        this.breaker.success();
        this.health.ok();
        const [allowed, tokensText] = reply as [number, string];
        const answer = answerFor(Number(allowed) === 1, Number(tokensText), policy, take);
        if (take && !answer.allowed) this.blocked.set(k, { tokens: Number(tokensText), atMs: nowMs, ratePerMs: policy.ratePerMs, burst: policy.burst });
        return answer;
      },
      (err: unknown) => {
        this.breaker.failure();
        this.health.failed('limit', err);
        return this.unreachable(key, policy, nowMs, take);
      },
    );
  }

  private unreachable(key: string, policy: BucketPolicy, nowMs: number, take: boolean): LimitAnswer | Promise<LimitAnswer> {
    if (this.config.failMode === 'open') return take ? this.fallback.take(key, policy, nowMs) : this.fallback.peek(key, policy, nowMs);
    const answer: LimiterUnavailable = { allowed: false, unavailable: true, retryAfterSec: Math.max(1, Math.ceil(this.breaker.msUntilProbe() / 1000)) };
    return answer;
  }
}

/**
 * The answer for a bucket that holds `tokens` after the script ran: remaining, reset and
 * retry-after by peekToken's formulas (which are takeToken's), `allowed` as the script decided.
 */
export function answerFor(allowed: boolean, tokens: number, policy: BucketPolicy, take: boolean): TakeResult {
  const view = peekToken({ tokens, updatedMs: 0 }, policy, 0);
  if (!take) return view;
  return { allowed, limit: view.limit, remaining: view.remaining, resetSec: view.resetSec, retryAfterSec: allowed ? 0 : view.retryAfterSec };
}

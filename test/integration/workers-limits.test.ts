// A policy's limit holds across workers (SPEC §7): with workers: 2 and concurrent requests on
// one credential, spread over both workers, the pod admits at most burst + rate × t — through
// the supervisor's coordinator without Redis, through Redis with store.redis. Two workers each
// limiting on their own would admit up to twice the burst; the bounds below exclude that.
// Rates are per minute so that refill during a test is at most a token or two.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { leaseSize } from '../../src/workers/coordinator.js';
import { deletePrefix, testPrefix } from '../store/redis-support.js';
import { CLI_TEST_TIMEOUT_MS, SETUP_TIMEOUT_MS } from './support.js';
import { requestLines } from './workers-support.js';

const WORKERS = 2;
const POLICIES = {
  default: { rate: '1000/s', burst: 1000 },
  tight: { rate: '6/m', burst: 10 },
  wide: { rate: '60/m', burst: 200 },
};

interface Burst {
  admitted: number;
  refused: number;
  other: number;
  seconds: number;
  workers: Set<unknown>;
}

/** `total` requests on one token, `parallel` at a time, each on a new connection unless an agent is given. */
async function burst(env: TestEnv, proxy: ChildProxy, secret: string, policyBurst: number, tag: string, total: number, parallel: number, keepAlive = false): Promise<Burst> {
  const agent = keepAlive ? new https.Agent({ keepAlive: true, maxSockets: parallel, ca: env.serverCa.certPem, servername: 'api.test' }) : undefined;
  let next = 0;
  const out = { admitted: 0, refused: 0, other: 0 };
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < total) {
        const i = next++;
        const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: `/api/items/${tag}-${i}`, headers: { 'x-api-key': secret }, ...(agent ? { agent } : {}) });
        if (res.status === 200) out.admitted++;
        else if (res.status === 429) {
          out.refused++;
          expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
          expect(res.json().code).toBe('KG_ERR_RATE_LIMITED');
        } else out.other++;
        if (res.status === 200 || res.status === 429) expect(res.headers['ratelimit-limit']).toBe(String(policyBurst));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent?.destroy();
  await eventually(() => requestLines(env.auditFile, `/api/items/${tag}-`).length === total, 5_000);
  return { ...out, seconds, workers: new Set(requestLines(env.auditFile, `/api/items/${tag}-`).map((l) => l.worker)) };
}

/** burst + rate × t, in whole requests: what one process would admit at most over `seconds`. */
const ceiling = (burstSize: number, perMinute: number, seconds: number) => burstSize + Math.floor((perMinute / 60) * seconds);

// Tokens are made before the proxy starts: both workers know them from the first request, and
// no request is spent finding out whether they do.
describe('workers: 2 without Redis: the supervisor coordinates the buckets', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  let env: TestEnv;
  let proxy: ChildProxy;
  let tight: { secret: string };
  let wide: { secret: string };
  beforeAll(async () => {
    env = await createTestEnv();
    env.writeConfig({ workers: WORKERS, policies: POLICIES });
    tight = await env.token('svc-tight', { roles: ['viewer'], policy: 'tight' });
    wide = await env.token('svc-wide', { roles: ['viewer'], policy: 'wide' });
    proxy = await env.startChild();
  }, SETUP_TIMEOUT_MS);
  afterAll(() => env.cleanup());

  it('a small burst: 40 concurrent requests on one token admit the burst of 10, no more', async () => {
    const r = await burst(env, proxy, tight.secret, 10, 'tight', 40, 20);
    expect(r.workers).toEqual(new Set([1, 2]));
    expect(r.other).toBe(0);
    expect(r.admitted).toBeLessThanOrEqual(ceiling(10, 6, r.seconds));
    expect(r.admitted).toBeGreaterThanOrEqual(10 - WORKERS * leaseSize(10, WORKERS));
    expect(r.refused).toBe(40 - r.admitted);
    // Spent: the next requests are refused on either worker, at once.
    const again = await burst(env, proxy, tight.secret, 10, 'tight-again', 10, 10);
    expect(again.admitted).toBeLessThanOrEqual(ceiling(10, 6, r.seconds + again.seconds) - r.admitted);
    expect(again.refused).toBeGreaterThanOrEqual(8);
  });

  it('a large burst, leased in blocks: 300 requests over 24 keep-alive connections admit at most burst + rate × t', async () => {
    const r = await burst(env, proxy, wide.secret, 200, 'wide', 300, 24, true);
    expect(r.workers).toEqual(new Set([1, 2]));
    expect(r.other).toBe(0);
    expect(r.admitted).toBeLessThanOrEqual(ceiling(200, 60, r.seconds));
    // Tokens leased to one worker are not spendable by the other until it asks again or they
    // expire: at most 1.5 leases per worker are held back (docs/workers.md).
    expect(r.admitted).toBeGreaterThanOrEqual(200 - WORKERS * Math.floor(1.5 * leaseSize(200, WORKERS)));
  });
});

describe('workers: 2 with store.redis: the buckets are in Redis', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  let env: TestEnv;
  let proxy: ChildProxy;
  let tight: { secret: string };
  const prefix = testPrefix();
  beforeAll(async () => {
    env = await createTestEnv();
    env.writeConfig({ workers: WORKERS, policies: POLICIES, store: { redis: { url: 'redis://127.0.0.1:6379/0', prefix } } });
    tight = await env.token('svc-tight', { roles: ['viewer'], policy: 'tight' });
    proxy = await env.startChild();
  }, SETUP_TIMEOUT_MS);
  afterAll(async () => {
    await env.cleanup();
    await deletePrefix(prefix);
  });

  it('40 concurrent requests on one token admit exactly the burst (plus what the rate refilled)', async () => {
    const r = await burst(env, proxy, tight.secret, 10, 'redis-tight', 40, 20);
    expect(r.workers).toEqual(new Set([1, 2]));
    expect(r.other).toBe(0);
    expect(r.admitted).toBeGreaterThanOrEqual(10);
    expect(r.admitted).toBeLessThanOrEqual(ceiling(10, 6, r.seconds));
  });
});

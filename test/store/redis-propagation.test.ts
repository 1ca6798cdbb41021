// How fast and how surely a change reaches every replica: three followers and a revocation
// (latency measured and bounded), a lost notification (pub/sub off, or its connection killed)
// caught by the poll, a follower further behind than the change log (it reloads), and an
// update too large to log (followers reload).
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { eventually } from '../helpers/harness.js';
import { createAccount, createToken, revokeToken } from '../../src/store/operations.js';
import { RedisStore, type RedisStoreOptions } from '../../src/store/redis/store.js';
import type { RedisConfig } from '../../src/config/schema.js';
import type { StoreData } from '../../src/store/types.js';
import { record, sorted, TestClock } from './conformance.js';
import { admin, deletePrefix, redisConfig, testPrefix } from './redis-support.js';

vi.setConfig({ testTimeout: 60_000 });

const prefix = testPrefix();
const config = redisConfig({ prefix });
const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));
const stores: RedisStore[] = [];
const open = (c: RedisConfig = config, o: RedisStoreOptions = {}) => {
  const s = new RedisStore(c, o);
  stores.push(s);
  return s;
};
let writer: RedisStore;

/** A follower that notes when it first saw each token revoked. */
function revocationWatcher(store: RedisStore) {
  const revokedAt = new Map<string, number>();
  const r = record(store);
  const inner = r.state;
  const follower = store.follow({
    onSnapshot: (d) => d.tokens.filter((t) => t.status === 'revoked').forEach((t) => revokedAt.has(t.id) || revokedAt.set(t.id, performance.now())),
    onChanges: (changes) => {
      for (const c of changes) if (c.op === 'put' && c.kind === 'token' && c.record.status === 'revoked' && !revokedAt.has(c.record.id)) revokedAt.set(c.record.id, performance.now());
    },
  });
  const stop = () => follower.stop();
  return { revokedAt, state: inner, events: r.events, stop: () => (stop(), r.stop()) };
}

async function mintTokens(n: number, account = 'fleet'): Promise<string[]> {
  await writer.update((d) => {
    if (!d.accounts.some((a) => a.name === account)) createAccount(d, { name: account }, clock.ctx());
  });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await writer.update((d) => createToken(d, { account }, clock.ctx()).record.id));
  return ids;
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

beforeAll(() => {
  writer = open(config, { actor: 'replica:writer' });
});
afterEach(async () => {
  for (const s of stores.splice(1)) await s.close();
});
afterAll(async () => {
  for (const s of stores.splice(0)) await s.close();
  await deletePrefix(prefix);
});

describe('Redis propagation', () => {
  it('three followers see each revocation within 1 s (p50/p99 reported)', async () => {
    const ids = await mintTokens(40);
    const followers = [open(), open(), open()].map(revocationWatcher);
    await eventually(() => followers.every((f) => f.state()?.tokens.length === 40), 10_000);
    const latencies: number[] = [];
    for (const id of ids) {
      const t0 = performance.now();
      await writer.update((d) => revokeToken(d, id, 'rotation drill', clock.ctx()));
      await eventually(() => followers.every((f) => f.revokedAt.has(id)), 5_000);
      latencies.push(Math.max(...followers.map((f) => f.revokedAt.get(id)! - t0)));
    }
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    console.log(`revocation to 3 followers: n=${latencies.length} p50=${p50.toFixed(1)} ms p99=${p99.toFixed(1)} ms max=${Math.max(...latencies).toFixed(1)} ms`);
    expect(p99).toBeLessThan(1_000);
    for (const f of followers) expect(sorted(f.state()!)).toEqual(sorted(await writer.read()));
    followers.forEach((f) => f.stop());
  });

  it('without pub/sub the poll alone brings a revocation within 1 s; with neither, nothing arrives', async () => {
    const [id] = await mintTokens(1);
    const polling = revocationWatcher(open(config, { subscribe: false }));
    const deaf = revocationWatcher(open({ ...config, pollInterval: 24 * 86_400_000 }, { subscribe: false }));
    await eventually(() => polling.state() !== undefined && deaf.state() !== undefined, 5_000);
    const t0 = performance.now();
    await writer.update((d) => revokeToken(d, id!, undefined, clock.ctx()));
    await eventually(() => polling.revokedAt.has(id!), 2_000);
    expect(polling.revokedAt.get(id!)! - t0).toBeLessThan(1_000);
    // The twin: no notification, no poll: the change is not seen (so the poll is what found it).
    await new Promise((r) => setTimeout(r, 1_200));
    expect(deaf.revokedAt.has(id!)).toBe(false);
    polling.stop();
    deaf.stop();
  });

  it('a killed pub/sub connection: the revocation made right after still arrives within 1 s', async () => {
    const [id] = await mintTokens(1);
    const store = open();
    const f = revocationWatcher(store);
    const r = admin();
    try {
      const subscriberIds = async () =>
        (String(await r.call('CLIENT', 'LIST', 'TYPE', 'pubsub')))
          .split('\n')
          .filter((l) => l.includes(`name=keygate:sub:${store.id}`))
          .map((l) => /\bid=(\d+)/.exec(l)![1]!);
      await eventually(async () => (await subscriberIds()).length === 1 && f.state() !== undefined, 5_000);
      const [before] = await subscriberIds();
      await r.client('KILL', 'ID', before!);
      const t0 = performance.now();
      await writer.update((d) => revokeToken(d, id!, undefined, clock.ctx()));
      await eventually(() => f.revokedAt.has(id!), 2_000);
      expect(f.revokedAt.get(id!)! - t0).toBeLessThan(1_000);
      // The connection really was killed, and came back as a new one.
      await eventually(async () => {
        const now = await subscriberIds();
        return now.length === 1 && now[0] !== before;
      }, 5_000);
    } finally {
      r.disconnect();
      f.stop();
    }
  });

  it('a follower further behind than the change log reloads; one within it gets only the changes', async () => {
    const small = { ...config, changeLog: 100, pollInterval: 24 * 86_400_000 };
    const w = open(small);
    await w.update((d) => createAccount(d, { name: 'behind' }, clock.ctx()));
    const follower = open(small, { subscribe: false });
    const r = record(follower);
    await eventually(() => r.events.length === 1, 5_000);
    // 50 updates: the log still reaches back, the follower catches up change by change.
    for (let i = 0; i < 50; i++) await w.update((d) => createToken(d, { account: 'behind' }, clock.ctx()));
    await follower.read();
    expect(r.events.filter((e) => e.type === 'snapshot')).toHaveLength(1);
    expect(r.state()!.tokens.length).toBe((await w.read()).tokens.length);
    // 150 more: the log (100 entries) no longer reaches back: a snapshot.
    for (let i = 0; i < 150; i++) await w.update((d) => createToken(d, { account: 'behind' }, clock.ctx()));
    await follower.read();
    expect(r.events.filter((e) => e.type === 'snapshot')).toHaveLength(2);
    expect(sorted(r.state()!)).toEqual(sorted(await w.read()));
    r.stop();
  });

  it('an update too large to log record by record makes followers reload', async () => {
    const f = record(open());
    await eventually(() => f.state() !== undefined, 5_000);
    const snapshotsBefore = f.events.filter((e) => e.type === 'snapshot').length;
    await writer.update((d: StoreData) => {
      for (let i = 0; i < 1_100; i++) createAccount(d, { name: `bulk-${i}` }, clock.ctx());
    });
    await eventually(() => f.state()!.accounts.filter((a) => a.name.startsWith('bulk-')).length === 1_100, 10_000);
    expect(f.events.filter((e) => e.type === 'snapshot').length).toBe(snapshotsBefore + 1);
    const log = await writer.readLog(0, 1_000);
    expect(log[log.length - 1]!.changes).toBe(1_100);
    expect(log[log.length - 1]!.actor).toBe('replica:writer');
    f.stop();
  });
});

// An update costs what it changes, not what the inventory holds: one revocation among 5,000
// tokens writes one hash field (counted by Redis itself, INFO commandstats on a redis-server of
// this test's own, so nobody else's commands are in the count), logs one change, delivers one
// change to a follower, and copies one record in the writer. And the write path stays atomic
// under races: a writer whose revision moved between its read and its commit runs its mutation
// again on the newer data (another process's change is kept, a conflicting one refuses the
// second attempt), and writers in several processes at once all land, each change once.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { eventually } from '../helpers/harness.js';
import { createAccount, createToken, OperationError, revokeToken } from '../../src/store/operations.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { importInventory } from '../../src/store/transfer.js';
import type { StoreChange, StoreData } from '../../src/store/types.js';
import { sorted, TestClock } from './conformance.js';
import { admin, deletePrefix, OwnRedis, redisConfig, testPrefix } from './redis-support.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));
const dist = (p: string) => fileURLToPath(new URL(`../../dist/${p}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kg-write-cost-'));
const stores: RedisStore[] = [];
const children: ChildProcess[] = [];
const prefixes: string[] = [];

function open(config: ReturnType<typeof redisConfig>): RedisStore {
  const s = new RedisStore(config);
  stores.push(s);
  return s;
}

/** `n` tokens over 10 accounts, as one import. */
function inventory(n: number): StoreData {
  const d: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
  for (let i = 0; i < 10; i++) createAccount(d, { name: `svc-${i}` }, clock.ctx());
  for (let i = 0; i < n; i++) createToken(d, { account: `svc-${i % 10}`, label: `t${i}` }, clock.ctx());
  return d;
}

/** Calls of each command since the last CONFIG RESETSTAT, as Redis counts them (script calls included). */
async function commandCalls(url: string): Promise<Record<string, number>> {
  const r = admin(url);
  try {
    const out: Record<string, number> = {};
    for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
    return out;
  } finally {
    r.disconnect();
  }
}

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const s of stores) await s.close();
  for (const p of prefixes) await deletePrefix(p);
  rmSync(dir, { recursive: true, force: true });
});

describe('an update writes what it changes', () => {
  let redis: OwnRedis;
  beforeAll(async () => {
    redis = await OwnRedis.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('one revocation among 5,000 tokens: one HSET, one logged change, one change delivered, one record copied', async () => {
    const config = redisConfig({ url: redis.url, prefix: testPrefix() });
    const writer = open(config);
    const data = inventory(5_000);
    await importInventory(writer, data);
    const follower = open(config);
    const delivered: StoreChange[][] = [];
    let snapshot = 0;
    follower.follow({ onSnapshot: (d) => (snapshot = d.tokens.length), onChanges: (c) => delivered.push([...c]) });
    await eventually(() => snapshot === 5_000, 30_000);
    await writer.read();

    const r = admin(redis.url);
    await r.config('RESETSTAT');
    const id = data.tokens[2_345]!.id;
    await writer.update((d) => revokeToken(d, id, 'cost', clock.ctx()));
    const calls = await commandCalls(redis.url);
    // The commit script wrote one field; nothing was rewritten, nothing deleted.
    expect(calls.hset).toBe(1);
    expect(calls.hdel ?? 0).toBe(0);
    expect(calls.hmset ?? 0).toBe(0);
    // The writer: one attempt, one change, one record serialized and one compared; one copy
    // (the revoked token's), not 5,000.
    expect(writer.lastUpdate).toEqual({ attempts: 1, changes: 1, materialized: 1, compared: 1, copied: 1 });
    // The log entry holds exactly the revoked token.
    const log = await r.zrange(`${config.prefix}inv:log`, '-1', '-1');
    r.disconnect();
    const entry = JSON.parse(log[0]!) as { changes: Array<[string, string, { status: string }]> };
    expect(entry.changes.map(([code, key, rec]) => [code, key, rec.status])).toEqual([['t', id, 'revoked']]);
    // The follower is handed that one change.
    await eventually(() => delivered.length > 0, 10_000);
    expect(delivered.flat().map((c) => (c.op === 'put' && c.kind === 'token' ? [c.kind, c.record.id, c.record.status] : [c.kind, c.op]))).toEqual([['token', id, 'revoked']]);
  });
});

describe('races', () => {
  // A process that opens the store, applies one change and exits: run synchronously from inside
  // a mutation, so that the revision moves between the writer's read and its commit.
  const SCRIPT = join(dir, 'revoke.mjs');
  writeFileSync(
    SCRIPT,
    `
import { RedisStore } from ${JSON.stringify(dist('store/redis/store.js'))};
import { revokeToken } from ${JSON.stringify(dist('store/operations.js'))};
const [config, id, reason] = [JSON.parse(process.argv[2]), process.argv[3], process.argv[4]];
const store = new RedisStore(config, { actor: 'other' });
await store.update((d) => revokeToken(d, id, reason, { config: { roles: {}, scopes: {}, policies: {}, environment: null }, now: new Date() }));
await store.close();
`,
  );
  const revokeElsewhere = (config: object, id: string, reason: string) => execFileSync(process.execPath, [SCRIPT, JSON.stringify(config), id, reason], { stdio: 'inherit', timeout: 60_000 });

  it('the revision moves between read and commit: the mutation runs again on the newer data, both changes land', async () => {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const config = redisConfig({ prefix });
    const writer = open(config);
    const data = inventory(200);
    await importInventory(writer, data);
    const [x, y] = [data.tokens[10]!.id, data.tokens[20]!.id];
    let runs = 0;
    await writer.update((d) => {
      runs++;
      if (runs === 1) revokeElsewhere(config, y, 'elsewhere');
      return revokeToken(d, x, 'here', clock.ctx());
    });
    expect(runs).toBe(2);
    expect(writer.lastUpdate?.attempts).toBe(2);
    const after = await open(config).read();
    const byId = new Map(after.tokens.map((t) => [t.id, t]));
    expect([byId.get(x)?.revokeReason, byId.get(y)?.revokeReason]).toEqual(['here', 'elsewhere']);
    // Two commits, each holding its own change only.
    const log = await writer.readLog(0, 1_000);
    expect(log.slice(-2).map((e) => [e.actor, e.changes])).toEqual([
      ['other', 1],
      [null, 1],
    ]);
    // The writer's own copy has both.
    const mine = await writer.read();
    expect(mine.tokens.filter((t) => t.status === 'revoked').map((t) => t.id).sort()).toEqual([x, y].sort());
  });

  it('the racing change touches the same record: the second attempt sees it and refuses', async () => {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const config = redisConfig({ prefix });
    const writer = open(config);
    const data = inventory(50);
    await importInventory(writer, data);
    const x = data.tokens[5]!.id;
    let runs = 0;
    const attempt = writer.update((d) => {
      runs++;
      if (runs === 1) revokeElsewhere(config, x, 'first');
      return revokeToken(d, x, 'second', clock.ctx());
    });
    await expect(attempt).rejects.toThrow(OperationError);
    await expect(attempt).rejects.toThrow(/already revoked/);
    expect(runs).toBe(2);
    const after = await open(config).read();
    expect(after.tokens.find((t) => t.id === x)?.revokeReason).toBe('first');
  });

  it('eight processes, five updates each, all at once, beside a following replica: every change lands once', async () => {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const config = redisConfig({ prefix });
    const setup = open(config);
    const data = inventory(1_000);
    await importInventory(setup, data);
    const follower = open(config);
    let view: StoreData | undefined;
    const { applyChanges } = await import('../../src/store/diff.js');
    follower.follow({ onSnapshot: (d) => (view = d), onChanges: (c) => (view = view && applyChanges(view, c)) });
    const start = (await setup.readLog(0, 1_000)).length;
    const PROCS = 8;
    const script = join(dir, 'mixed.mjs');
    writeFileSync(
      script,
      `
import { RedisStore } from ${JSON.stringify(dist('store/redis/store.js'))};
import { createToken, revokeToken } from ${JSON.stringify(dist('store/operations.js'))};
const [config, n, ids] = [JSON.parse(process.argv[2]), Number(process.argv[3]), JSON.parse(process.argv[4])];
const store = new RedisStore(config, { actor: 'proc:' + n });
await store.read();
process.stdout.write('ready\\n');
process.stdin.once('data', async () => {
  const ctx = () => ({ config: { roles: {}, scopes: {}, policies: {}, environment: null }, now: new Date() });
  const created = [];
  for (const id of ids) await store.update((d) => revokeToken(d, id, 'proc ' + n, ctx()));
  created.push(await store.update((d) => createToken(d, { account: 'svc-' + n }, ctx()).record.id));
  process.stdout.write('done ' + JSON.stringify(created) + '\\n');
  await store.close();
  process.stdin.destroy();
});
`,
    );
    const outputs = Array.from({ length: PROCS }, () => '');
    const exits: Promise<number | null>[] = [];
    const revoked = Array.from({ length: PROCS }, (_, i) => data.tokens.slice(i * 4, i * 4 + 4).map((t) => t.id));
    for (let i = 0; i < PROCS; i++) {
      const child = spawn(process.execPath, [script, JSON.stringify(config), String(i), JSON.stringify(revoked[i])], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      child.stdout!.on('data', (b: Buffer) => (outputs[i] += b.toString()));
      exits.push(new Promise((r) => child.once('exit', r)));
    }
    await eventually(() => outputs.every((o) => o.includes('ready')), 60_000);
    for (const c of children.slice(-PROCS)) c.stdin!.write('go\n');
    const codes = await Promise.all(exits);
    expect(codes.every((c) => c === 0), outputs.join('')).toBe(true);
    const created = outputs.flatMap((o) => JSON.parse(/done (.*)/.exec(o)![1]!) as string[]);
    expect(new Set(created).size).toBe(PROCS);

    const after = await open(config).read();
    const byId = new Map(after.tokens.map((t) => [t.id, t]));
    revoked.forEach((ids, i) => ids.forEach((id) => expect(byId.get(id)?.revokeReason).toBe(`proc ${i}`)));
    for (const id of created) expect(byId.get(id)?.status).toBe('active');
    expect(after.tokens).toHaveLength(1_000 + PROCS);
    // 8 × 5 commits, each with one change, none applied twice.
    const log = (await setup.readLog(0, 1_000)).slice(start);
    expect(log).toHaveLength(PROCS * 5);
    expect(log.every((e) => e.changes === 1)).toBe(true);
    // The follower, fed change by change, holds what a fresh read holds.
    const same = () => view !== undefined && JSON.stringify(sorted(view)) === JSON.stringify(sorted(after));
    await eventually(same, 10_000).catch(() => undefined);
    expect(view && sorted(view)).toEqual(sorted(after));
  });
});

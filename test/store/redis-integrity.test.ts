// What Redis holds and what a replica makes of it: no secret anywhere (every key and value
// scanned after minting tokens), a commit asked twice applies once, a Redis that lost writes
// (revision gone back) makes replicas raise the revision and reload, and a hand-edited record
// that does not validate is left out and reported, the rest still served.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { eventually } from '../helpers/harness.js';
import { createAccount, createToken, revokeToken } from '../../src/store/operations.js';
import { hashToken } from '../../src/store/token-format.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { COMMIT, runScript } from '../../src/store/redis/scripts.js';
import type { StoreProblem } from '../../src/store/types.js';
import { record, TestClock } from './conformance.js';
import { admin, deletePrefix, dumpPrefix, redisConfig, testPrefix } from './redis-support.js';

vi.setConfig({ testTimeout: 30_000 });

const prefixes: string[] = [];
const stores: RedisStore[] = [];
const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));
function fresh() {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const config = redisConfig({ prefix });
  const open = () => {
    const s = new RedisStore(config);
    stores.push(s);
    return s;
  };
  return { prefix, config, open };
}

afterAll(async () => {
  for (const s of stores) await s.close();
  for (const p of prefixes) await deletePrefix(p);
});

describe('Redis holds no secret', () => {
  it('after minting, rotating and revoking tokens, no key or value contains a secret; the hashes are there', async () => {
    const { prefix, open } = fresh();
    const s = open();
    await s.update((d) => createAccount(d, { name: 'svc' }, clock.ctx()));
    const secrets: string[] = [];
    for (let i = 0; i < 5; i++) secrets.push(await s.update((d) => createToken(d, { account: 'svc', label: `t${i}` }, clock.ctx()).secret));
    const firstId = (await s.read()).tokens[0]!.id;
    await s.update((d) => revokeToken(d, firstId, 'drill', clock.ctx()));
    await s.writeUsage({ [firstId]: Date.now() });
    const dump = await dumpPrefix(prefix);
    expect(dump.size).toBeGreaterThanOrEqual(6);
    const everything = [...dump].map(([k, v]) => `${k}\n${v}`).join('\n');
    for (const secret of secrets) {
      expect(everything).not.toContain(secret);
      // Nor the random part alone (the text after the kg_ prefix).
      expect(everything).not.toContain(secret.slice(secret.lastIndexOf('_') + 1));
      // The twin: the scan did read the values, the hashes are in them.
      expect(everything).toContain(hashToken(secret));
    }
  });
});

describe('commits', () => {
  it('a commit asked twice (its reply lost) lands once: the second answer says it already did', async () => {
    const { open, config } = fresh();
    const s = open();
    const k = s.keys;
    const keys = [k.rev, k.epoch, k.accounts, k.tokens, k.certs, k.log, k.usage, k.channel];
    const account = JSON.stringify({ name: 'once', description: '', owner: '', endDate: null, roles: [], scopes: [], policy: null, disabled: false, createdAt: '2030-01-01T00:00:00.000Z', updatedAt: '2030-01-01T00:00:00.000Z' });
    const entry = JSON.stringify({ rev: '@REV@', commit: 'c-1', actor: 'test', at: '2030-01-01T00:00:00.000Z', changes: [['a', 'once', JSON.parse(account)]] });
    const argv = ['0', '', 'epoch-1', 'c-1', entry, String(config.changeLog), 'a', 'once', account];
    expect(await runScript(admin(), COMMIT, keys, argv)).toEqual([1, 1]);
    expect(await runScript(admin(), COMMIT, keys, argv)).toEqual([2, 1]);
    // Another commit on the same base revision is refused (the writer must catch up).
    expect(await runScript(admin(), COMMIT, keys, [...argv.slice(0, 3), 'c-2', entry.replace('c-1', 'c-2'), ...argv.slice(5)])).toEqual([0, 1]);
    expect((await s.readLog(0)).map((e) => e.revision)).toEqual([1]);
    expect((await s.read()).accounts.map((a) => a.name)).toEqual(['once']);
  });
});

describe('a Redis that lost writes', () => {
  it('the revision went back: the replica raises it above what it had seen and reloads; revisions never go back', async () => {
    const { open } = fresh();
    const w = open();
    await w.update((d) => createAccount(d, { name: 'svc' }, clock.ctx()));
    const lost = await w.update((d) => createToken(d, { account: 'svc' }, clock.ctx()).record.id);
    const follower = open();
    const r = record(follower);
    await eventually(() => r.state()?.tokens.length === 1, 5_000);
    const seen = r.events[r.events.length - 1]!.revision;
    // As if the AOF tail was lost: the last revision, its log entry and its token are gone.
    const c = admin();
    await c.set(follower.keys.rev, String(seen - 1));
    await c.zremrangebyscore(follower.keys.log, seen, seen);
    await c.hdel(follower.keys.tokens, lost);
    // A reconnect (as after the restart): kill the follower's store connection.
    const list = (await c.client('LIST')) as string;
    const id = list.split('\n').find((l) => l.includes(`name=keygate:store:${follower.id}`))!;
    await c.client('KILL', 'ID', /\bid=(\d+)/.exec(id)![1]!);
    await eventually(() => r.state()?.tokens.length === 0, 5_000);
    const last = r.events[r.events.length - 1]!;
    expect(last.type).toBe('snapshot');
    expect(last.revision).toBe(seen + 1);
    expect(Number(await c.get(follower.keys.rev))).toBe(seen + 1);
    for (let i = 1; i < r.events.length; i++) expect(r.events[i]!.revision).toBeGreaterThanOrEqual(r.events[i - 1]!.revision);
    // The next write gets a revision no replica has seen before, and arrives as a change.
    await w.update((d) => createToken(d, { account: 'svc' }, clock.ctx()));
    await eventually(() => r.state()?.tokens.length === 1, 5_000);
    expect(r.events[r.events.length - 1]).toMatchObject({ type: 'changes', revision: seen + 2 });
    c.disconnect();
  });
});

describe('a hand edit that does not validate', () => {
  it('is left out and reported; the valid records are served', async () => {
    const { open } = fresh();
    const w = open();
    await w.update((d) => createAccount(d, { name: 'svc' }, clock.ctx()));
    const good = await w.update((d) => createToken(d, { account: 'svc' }, clock.ctx()).record.id);
    const c = admin();
    await c.hset(w.keys.tokens, 'tok_broken', '{"id":"tok_broken","account":"svc","hash":"not-a-hash"}');
    await c.hset(w.keys.tokens, 'tok_garbage', 'not json');
    c.disconnect();
    const follower = open();
    const rejected: StoreProblem[][] = [];
    let tokens: string[] = [];
    follower.follow({ onSnapshot: (d) => (tokens = d.tokens.map((t) => t.id)), onChanges: () => undefined, onRejected: (p) => rejected.push([...p]) });
    await eventually(() => rejected.length > 0, 5_000);
    expect(tokens).toEqual([good]);
    const messages = rejected.flat().map((p) => `${p.file}: ${p.message}`);
    expect(messages.some((m) => m.includes('tokens[tok_broken]') && m.includes('hash'))).toBe(true);
    expect(messages.some((m) => m.includes('tokens[tok_garbage]') && m.includes('not valid JSON'))).toBe(true);
    const { problems } = await follower.readSource();
    expect(problems).toHaveLength(2);
  });
});

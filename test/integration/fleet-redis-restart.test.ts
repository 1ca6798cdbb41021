// A fleet through a Redis outage, on a redis-server this test starts itself (a free port, AOF
// with fsync always, in a temp folder), killed with SIGKILL and started again: three replicas
// with failMode closed and two with failMode open. During the outage every replica keeps the
// credentials it knew (revocations included) and says so (keygate_store_up 0,
// keygate_store_errors_total rising, a log line) while /readyz stays 200; limited requests get
// 503 KG_ERR_STORE_UNAVAILABLE with Retry-After (closed) or each replica's own bucket (open);
// a write through the admin API or the CLI fails cleanly. After the restart every replica
// recovers on its own and a new revocation reaches all of them within 1 s. Then the pub/sub
// connections are killed and kept from coming back: a revocation still reaches every replica
// within 1 s, through the revision poll alone.
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnv, eventually, runCli, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { OwnRedis } from '../store/redis-support.js';
import { adminApi, Client, enforcedEverywhere, fleetPrefix, metric, onRedis, startReplicas, FLEET_SETUP_MS } from './fleet-support.js';
import { adminGet } from './support.js';

// Several CLI runs and replica starts per test: minutes on a busy two-core machine, still bounded.
vi.setConfig({ testTimeout: 120_000 });

const BURST = 3;
const prefix = fleetPrefix();
let redis: OwnRedis;
let env: TestEnv;
let client: Client;
let closed: ChildProxy[];
let open: ChildProxy[];
let all: ChildProxy[];
let adminSecret: string;
const tokens: Record<'known' | 'revoked' | 'limited' | 'afterRestart' | 'viaPoll', { secret: string; id: string }> = {} as never;
const ERROR_OPS = ['read', 'update', 'sync', 'usage', 'limit'];

const errorsOf = async (r: ChildProxy) => {
  let sum = 0;
  for (const op of ERROR_OPS) sum += await metric(r.adminPort, 'keygate_store_errors_total', { op });
  return sum;
};
/** The CLI on this file's config, with a bound generous enough for a busy machine. */
const cli = (args: string[], configFile = env.configFile) => runCli([...args, '-c', configFile], { timeoutMs: 60_000 });
const logLines = (r: ChildProxy, msg: string) => r.stderr().split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).length;
/** The last of the store's transition lines a replica logged. */
const lastTransition = (r: ChildProxy) => r.stderr().split('\n').filter((l) => /"msg":"shared store (un)?reachable"/.test(l)).at(-1)?.match(/shared store \w+/)?.[0];

beforeAll(async () => {
  redis = await OwnRedis.start();
  env = await createTestEnv();
  // No default policy: tokens without one are not limited, so "known credentials keep working"
  // is seen apart from the limits; `limited` has a bucket of 3 that refills once an hour.
  const base = { policies: { default: undefined, limited: { rate: '1/h', burst: BURST } } };
  env.writeConfig({ ...base, ...onRedis(prefix, { url: redis.url, connectTimeout: '3s', failMode: 'closed' }) });
  const openConfig = join(env.dir, 'keygate-open.yaml');
  env.writeConfig({ ...base, ...onRedis(prefix, { url: redis.url, connectTimeout: '3s', failMode: 'open' }) }, openConfig);
  expect((await cli(['account', 'create', '--name', 'ops', '--role', 'admin'])).code).toBe(0);
  const t = await cli(['token', 'create', '--account', 'ops', '--json']);
  expect(t.code, t.stderr).toBe(0);
  adminSecret = (JSON.parse(t.stdout) as { token: string }).token;
  [closed, open] = await Promise.all([startReplicas(env, 3), startReplicas(env, 2, { configFile: openConfig })]);
  all = [...closed, ...open];
  client = new Client(env);

  const A = closed[0]!;
  expect((await adminApi(A.adminPort, adminSecret, 'POST', 'accounts', { name: 'svc', roles: ['viewer'] })).status).toBe(201);
  for (const name of Object.keys({ known: 0, revoked: 0, limited: 0, afterRestart: 0, viaPoll: 0 }) as Array<keyof typeof tokens>) {
    const r = await adminApi(A.adminPort, adminSecret, 'POST', 'tokens', { account: 'svc', label: name, ...(name === 'limited' && { policy: 'limited' }) });
    expect(r.status).toBe(201);
    tokens[name] = { secret: r.body.token, id: r.body.id };
  }
  expect((await adminApi(A.adminPort, adminSecret, 'POST', `tokens/${tokens.revoked.id}/revoke`, {})).status).toBe(200);
  // Everyone has it all before the outage.
  await enforcedEverywhere(client, all, tokens.revoked.secret, { status: 401, code: 'KG_ERR_TOKEN_REVOKED' }, performance.now(), 5_000);
  await enforcedEverywhere(client, all, tokens.viaPoll.secret, { status: 200 }, performance.now(), 5_000);
}, FLEET_SETUP_MS);

afterAll(async () => {
  client?.destroy();
  await env?.cleanup();
  await redis?.stop();
});

describe('Redis killed with SIGKILL, then started again', () => {
  it('during the outage every replica keeps what it knew, says so, stays ready, and limits follow failMode', async () => {
    const errorsBefore = await Promise.all(all.map(errorsOf));
    for (const r of all) expect(await metric(r.adminPort, 'keygate_store_up')).toBe(1);
    await redis.kill();

    await eventually(async () => (await Promise.all(all.map((r) => metric(r.adminPort, 'keygate_store_up')))).every((v) => v === 0), 5_000);
    for (const r of all) {
      expect(logLines(r, 'shared store unreachable'), 'a log line on the transition').toBeGreaterThanOrEqual(1);
      expect(lastTransition(r)).toBe('shared store unreachable');
    }

    for (const r of all) {
      // Credentials known before the outage keep working; revocations made before it stay in force.
      expect(await client.status(r.port, tokens.known.secret)).toBe(200);
      expect((await client.call(r.port, tokens.revoked.secret)).code).toBe('KG_ERR_TOKEN_REVOKED');
      // Readiness stays: every replica shares this Redis, taking them all out would help no one.
      const ready = await adminGet(r.adminPort, '/readyz');
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body)).toEqual({ status: 'ready', store: 'unreachable' });
    }

    // failMode closed: a limited request is refused, with a time to come back.
    for (const r of closed) {
      const res = await client.call(r.port, tokens.limited.secret);
      expect(res.status).toBe(503);
      expect(res.code).toBe('KG_ERR_STORE_UNAVAILABLE');
      expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    }
    // failMode open: each replica limits with its own bucket: BURST each, so more than one
    // bucket's worth across the two — and then its own 429.
    for (const r of open) {
      const answers: number[] = [];
      for (let i = 0; i < BURST + 1; i++) answers.push((await client.call(r.port, tokens.limited.secret)).status);
      expect(answers).toEqual([...Array<number>(BURST).fill(200), 429]);
    }

    const errorsDuring = await Promise.all(all.map(errorsOf));
    all.forEach((_, i) => expect(errorsDuring[i]).toBeGreaterThan(errorsBefore[i]!));
    for (const r of closed) expect(await metric(r.adminPort, 'keygate_store_errors_total', { op: 'limit' })).toBeGreaterThan(0);

    // Management fails cleanly: 503 from the admin API, one line from the CLI, nothing changed.
    const write = await adminApi(closed[1]!.adminPort, adminSecret, 'POST', 'tokens', { account: 'svc' });
    expect(write.status).toBe(503);
    expect(write.body.code).toBe('KG_ERR_STORE_UNAVAILABLE');
    expect(write.body.detail).toContain(`127.0.0.1:${redis.port}`);
    const refused = await cli(['token', 'create', '--account', 'svc']);
    expect(refused.code, refused.stderr).not.toBe(0);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.trim().split('\n'), refused.stderr).toHaveLength(1);
    expect(refused.stderr).toContain(`redis 127.0.0.1:${redis.port}/0`);
    for (const r of all) expect(r.stderr()).not.toContain('"stack"');

    // ---- Redis comes back (the same AOF): every replica recovers without a restart.
    await redis.start();
    await eventually(async () => (await Promise.all(all.map((r) => metric(r.adminPort, 'keygate_store_up')))).every((v) => v === 1), 15_000);
    for (const r of all) {
      expect(logLines(r, 'shared store reachable'), 'a log line at start and one on recovery').toBeGreaterThanOrEqual(2);
      expect(lastTransition(r)).toBe('shared store reachable');
    }
    for (const r of all) {
      expect(await client.status(r.port, tokens.known.secret)).toBe(200);
      expect((await client.call(r.port, tokens.revoked.secret)).code).toBe('KG_ERR_TOKEN_REVOKED');
      expect(JSON.parse((await adminGet(r.adminPort, '/readyz')).body)).toEqual({ status: 'ready', store: 'reachable' });
    }
    // Limits are shared through Redis again once each limiter's breaker lets a probe through.
    await eventually(async () => (await Promise.all(closed.map((r) => client.status(r.port, tokens.limited.secret)))).every((s) => s !== 503), 15_000);

    // A revocation made now reaches every replica within a second.
    const t0 = performance.now();
    const revoked = await adminApi(closed[2]!.adminPort, adminSecret, 'POST', `tokens/${tokens.afterRestart.id}/revoke`, {});
    expect(revoked.status).toBe(200);
    const took = await enforcedEverywhere(client, all, tokens.afterRestart.secret, { status: 401, code: 'KG_ERR_TOKEN_REVOKED' }, t0, 5_000);
    console.info(`after the Redis restart: a revocation reached all 5 replicas in ${took.toFixed(0)} ms`);
    expect(took).toBeLessThanOrEqual(1_000);
  });

  it('pub/sub connections killed and kept out: a revocation still reaches every replica within 1 s, by the poll', async () => {
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1, protocol: 2 });
    admin.on('error', () => undefined);
    const subscribers = async () => ((await admin.client('LIST')) as string).split('\n').filter((l) => / flags=P /.test(l)).length;
    try {
      await eventually(async () => (await subscribers()) === all.length, 10_000);
      // No new connection may join (the subscribers would come back within ~100 ms and catch up
      // on "ready"); the connections already open — store, limiter, this one — stay.
      const connected = ((await admin.client('LIST')) as string).split('\n').filter(Boolean).length;
      await admin.config('SET', 'maxclients', String(connected - all.length));
      expect(Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(all.length);
      await new Promise((r) => setTimeout(r, 300));
      expect(await subscribers()).toBe(0);

      const t0 = performance.now();
      const revoked = await adminApi(closed[2]!.adminPort, adminSecret, 'POST', `tokens/${tokens.viaPoll.id}/revoke`, {});
      expect(revoked.status).toBe(200);
      const took = await enforcedEverywhere(client, all, tokens.viaPoll.secret, { status: 401, code: 'KG_ERR_TOKEN_REVOKED' }, t0, 5_000);
      console.info(`no pub/sub: a revocation reached all 5 replicas in ${took.toFixed(0)} ms (pollInterval 250 ms)`);
      expect(took).toBeLessThanOrEqual(1_000);
      expect(await subscribers(), 'no notification could have carried it').toBe(0);
      for (const r of all) expect(await client.status(r.port, tokens.known.secret)).toBe(200);
    } finally {
      await admin.config('SET', 'maxclients', '10000').catch(() => undefined);
      admin.disconnect();
    }
    // The subscribers come back on their own.
    const check = new Redis(redis.url, { maxRetriesPerRequest: 1, protocol: 2 });
    check.on('error', () => undefined);
    try {
      await eventually(async () => ((await check.client('LIST')) as string).split('\n').filter((l) => / flags=P /.test(l)).length === all.length, 10_000);
    } finally {
      check.disconnect();
    }
  });
});

describe('keygate check against this Redis', () => {
  it('ok while it answers; a clear error and a non-zero exit when it does not', async () => {
    const ok = await cli(['check']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout, ok.stderr).toMatch(/: ok — .* 2 account\(s\), 6 token\(s\)/);
    await redis.kill();
    try {
      const down = await cli(['check']);
      expect(down.code, down.stderr).not.toBe(0);
      expect(down.stderr).toContain(`redis 127.0.0.1:${redis.port}/0`);
      expect(down.stderr, down.stderr).toMatch(/cannot read the credential store: .*not reachable within 3000 ms/);
      expect(down.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await redis.start();
    }
  });
});

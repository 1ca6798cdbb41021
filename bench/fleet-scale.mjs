// Fleet scale on Redis (not a test): an inventory of 100,000 credentials, and what a replica and
// the CLI pay at that size.
//
//   npm run build && node bench/fleet-scale.mjs     (REDIS_URL, COUNT, FOLLOWERS, REVOCATIONS, TAKES)
//
// Measures: the import of the inventory (one update), a follower's initial snapshot (time and
// RSS, in a fresh process, with the index a proxy would build), a revocation's time to 3
// follower processes, one update (token create) at that size in a warm process (with what it
// copied and compared) and in a fresh process (as a CLI command), Redis memory, and the latency of a rate-limit check with Redis vs
// in memory, in the same run. Uses its own key prefix and deletes it at the end.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const dist = (p) => fileURLToPath(new URL(`../dist/${p}`, import.meta.url));
const { configSchema } = await import(dist('config/schema.js'));
const { RedisStore } = await import(dist('store/redis/store.js'));
const { RedisRateLimiter } = await import(dist('ratelimit/redis-limiter.js'));
const { MemoryRateLimiter } = await import(dist('ratelimit/limiter.js'));
const { createToken, revokeToken } = await import(dist('store/operations.js'));
const { importInventory } = await import(dist('store/transfer.js'));

const URL_ = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const COUNT = Number(process.env.COUNT ?? 100_000);
const FOLLOWERS = Number(process.env.FOLLOWERS ?? 3);
const REVOCATIONS = Number(process.env.REVOCATIONS ?? 40);
const TAKES = Number(process.env.TAKES ?? 5_000);
const prefix = `kgbench:${randomBytes(4).toString('hex')}:`;
const redisConfig = configSchema.parse({ listen: { tls: { cert: 'x', key: 'x' } }, routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:1' }], store: { redis: { url: URL_, prefix, commandTimeout: '10s' } } }).store.redis;
const work = mkdtempSync(join(tmpdir(), 'kg-fleet-bench-'));
const ctx = () => ({ config: { roles: {}, scopes: {}, policies: {}, environment: null }, now: new Date() });
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const ms = (x) => Math.round(x * 10) / 10;
const mb = (b) => Math.round(b / 1048576);
const us = (msValue) => Math.round(msValue * 1000 * 10) / 10;
const results = {};
const admin = new Redis(URL_, { protocol: 2 });

function inventory(n) {
  const accounts = [];
  const tokens = [];
  const at = new Date().toISOString();
  const accountCount = Math.max(1, Math.round(n / 100));
  for (let i = 0; i < accountCount; i++) accounts.push({ name: `svc-${i}`, description: 'bench', owner: 'ops@example.com', endDate: null, roles: [], scopes: [], policy: null, disabled: false, createdAt: at, updatedAt: at });
  for (let i = 0; i < n; i++) {
    tokens.push({ id: `tok_${i.toString(36).padStart(14, '0')}`, account: `svc-${i % accountCount}`, label: `bench ${i}`, hash: createHash('sha256').update(`secret-${i}-${prefix}`).digest('hex'), environment: null, scopes: null, policy: null, status: 'active', createdAt: at, expiresAt: null, revokedAt: null, revokeReason: null, rotatedFrom: null, rotatedTo: null });
  }
  return { version: 1, accounts, tokens, certificates: [] };
}

// A follower process: snapshot (timed), an index by hash as the proxy builds it, then a line per
// revoked token with the time it was seen.
const FOLLOWER = `
const { RedisStore } = await import(${JSON.stringify(dist('store/redis/store.js'))});
const config = JSON.parse(process.argv[2]);
const t0 = performance.now();
const store = new RedisStore(config);
const index = new Map();
let first = true;
store.follow({
  onSnapshot(data) {
    index.clear();
    for (const t of data.tokens) index.set(t.hash, t);
    if (first) {
      first = false;
      const took = performance.now() - t0;
      globalThis.gc?.();
      const m = process.memoryUsage();
      process.stdout.write(JSON.stringify({ snapshot: { ms: took, tokens: index.size, rss: m.rss, heapUsed: m.heapUsed } }) + '\\n');
    }
  },
  onChanges(changes) {
    const now = Date.now();
    for (const c of changes) if (c.op === 'put' && c.kind === 'token') {
      index.set(c.record.hash, c.record);
      if (c.record.status === 'revoked') process.stdout.write(JSON.stringify({ revoked: c.record.id, at: now }) + '\\n');
    }
  },
});
process.stdin.on('data', async () => { await store.close(); process.exit(0); });
`;

// A CLI-like process: open the store, create one token, close.
const CLI = `
const { RedisStore } = await import(${JSON.stringify(dist('store/redis/store.js'))});
const { createToken } = await import(${JSON.stringify(dist('store/operations.js'))});
const store = new RedisStore(JSON.parse(process.argv[2]), { actor: 'cli:bench' });
const ctx = { config: { roles: {}, scopes: {}, policies: {}, environment: null }, now: new Date() };
await store.update((d) => createToken(d, { account: 'svc-0' }, ctx));
await store.close();
`;

function startFollower(script) {
  const child = spawn(process.execPath, ['--expose-gc', script, JSON.stringify(redisConfig)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  let buf = '';
  child.stdout.on('data', (b) => {
    buf += b;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  return { child, lines };
}

async function until(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

try {
  const memBefore = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))[1]);
  // ---- import: one update with the whole inventory
  const writer = new RedisStore(redisConfig, { actor: 'bench' });
  const data = inventory(COUNT);
  let t = performance.now();
  await importInventory(writer, data, { actor: 'bench' });
  results.import = { records: data.accounts.length + data.tokens.length, ms: ms(performance.now() - t) };
  const memAfter = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))[1]);
  results.redisMemory = { mb: mb(memAfter - memBefore), bytesPerCredential: Math.round((memAfter - memBefore) / COUNT) };

  // ---- one update at that size: warm (this process already holds the inventory) and cold (a CLI)
  const warm = [];
  for (let i = 0; i < 10; i++) {
    t = performance.now();
    await writer.update((d) => createToken(d, { account: 'svc-0' }, ctx()));
    warm.push(performance.now() - t);
  }
  results.updateWarm = { p50: ms(pct(warm, 50)), max: ms(Math.max(...warm)), cost: writer.lastUpdate, note: 'cost: records serialized (materialized), compared and copied by the last update' };
  const cliScript = join(work, 'cli.mjs');
  writeFileSync(cliScript, CLI);
  const cold = [];
  for (let i = 0; i < 3; i++) {
    t = performance.now();
    await new Promise((res, rej) => spawn(process.execPath, [cliScript, JSON.stringify(redisConfig)], { stdio: 'inherit' }).on('exit', (c) => (c === 0 ? res() : rej(new Error(`cli exit ${c}`)))));
    cold.push(performance.now() - t);
  }
  results.cliTokenCreate = { p50: ms(pct(cold, 50)), max: ms(Math.max(...cold)), note: 'fresh node process: start, load the inventory, commit, close' };

  // ---- followers: initial snapshot, then revocations
  const followerScript = join(work, 'follower.mjs');
  writeFileSync(followerScript, FOLLOWER);
  const followers = Array.from({ length: FOLLOWERS }, () => startFollower(followerScript));
  await until(() => followers.every((f) => f.lines.some((l) => l.snapshot)), 120_000, 'follower snapshots');
  const snaps = followers.map((f) => f.lines.find((l) => l.snapshot).snapshot);
  results.followerSnapshot = { ms: snaps.map((s) => ms(s.ms)), rssMb: snaps.map((s) => mb(s.rss)), heapUsedMb: snaps.map((s) => mb(s.heapUsed)), tokens: snaps[0].tokens, note: `${FOLLOWERS} followers started at once` };

  const ids = data.tokens.slice(0, REVOCATIONS).map((x) => x.id);
  const latencies = [];
  for (const id of ids) {
    const t0 = Date.now();
    await writer.update((d) => revokeToken(d, id, 'bench', ctx()));
    await until(() => followers.every((f) => f.lines.some((l) => l.revoked === id)), 10_000, `revocation ${id}`);
    latencies.push(Math.max(...followers.map((f) => f.lines.find((l) => l.revoked === id).at)) - t0);
  }
  results.revocationToAllFollowers = { n: latencies.length, p50: pct(latencies, 50), p99: pct(latencies, 99), max: Math.max(...latencies), note: 'ms from calling update() to the last of the followers applying it (includes the write)' };
  for (const f of followers) f.child.stdin.write('stop\n');
  await Promise.all(followers.map((f) => new Promise((r) => (f.child.exitCode !== null ? r() : f.child.once('exit', r)))));
  await writer.close();

  // ---- rate-limit latency: Redis vs memory, same run, same policy
  const policy = { name: 'bench', ratePerMs: 1, burst: 1_000_000, per: 'credential', rateText: '1000/s' };
  const limiter = new RedisRateLimiter(redisConfig);
  await limiter.ready();
  const memory = new MemoryRateLimiter();
  const measure = async (l) => {
    const xs = [];
    for (let i = 0; i < TAKES; i++) {
      const s = performance.now();
      const r = l.take(`cred-${i % 1000}`, policy, Date.now());
      if (r instanceof Promise) await r;
      xs.push(performance.now() - s);
    }
    return xs;
  };
  await measure(limiter); // warm-up: script loaded, connection hot
  const redisTakes = await measure(limiter);
  const memTakes = await measure(memory);
  // Concurrency: 64 takes in flight (one tick): auto-pipelining sends them in one write.
  t = performance.now();
  for (let round = 0; round < TAKES / 64; round++) await Promise.all(Array.from({ length: 64 }, (_, i) => limiter.take(`cred-${i}`, policy, Date.now())));
  const perTakeConcurrent = (performance.now() - t) / (Math.floor(TAKES / 64) * 64);
  results.limitCheck = {
    redis: { p50: us(pct(redisTakes, 50)), p99: us(pct(redisTakes, 99)) },
    memory: { p50: us(pct(memTakes, 50)), p99: us(pct(memTakes, 99)) },
    redisConcurrent64: { perTake: us(perTakeConcurrent) },
    note: 'µs per take, sequential (one in flight); allowed answers (a refused bucket is answered locally)',
  };
  await limiter.close();
  console.log(JSON.stringify({ count: COUNT, redis: URL_, ...results }, null, 2));
} finally {
  let cursor = '0';
  for (let i = 0; i < 1_000_000; i++) {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await admin.del(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  admin.disconnect();
  rmSync(work, { recursive: true, force: true });
}

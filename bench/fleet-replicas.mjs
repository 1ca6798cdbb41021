// Fleet scale with real `keygate serve` replicas on Redis (not a test): an inventory of COUNT
// credentials (default 100,000) in Redis, then what a replica, a revocation, the CLI and a
// limited request cost at that size.
//
//   npm run build && node bench/fleet-replicas.mjs
//   (REDIS_URL, COUNT, REPLICAS, REVOCATIONS, CLI_RUNS, REQUESTS; KEEP=1 keeps the temp folder;
//   CPU_PROF_DIR=DIR profiles each replica)
//
// Measures, in one run:
// - a replica's start-up (spawn → "keygate listening": connect, snapshot, check, index) and
//   its RSS once listening, alone and then REPLICAS-1 more started at once;
// - a revocation through one replica's admin API, from the call to the moment every replica
//   answers 401 for the token (each replica probed with the token over keep-alive HTTPS), and
//   how long a request to a replica stalls while changes are applied (a prober running beside);
// - CLI command times against that inventory: token create, token list, token revoke, account show;
// - a /metrics scrape at that size;
// - the latency a Redis limit adds to a request: sequential and 16-in-flight requests through
//   a replica on store.redis and through one on the file store, same policy, same run.
// Uses its own key prefix (deleted at the end) and stops every process it started, by pid.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { killAllNow, memoryMiB, start, stopAll, waitForLine } from './lib/proc.mjs';
import { mintPki } from './lib/setup.mjs';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
const CLI = join(DIST, 'cli/keygate.js');
const dist = (p) => import(join(DIST, p));
const { configSchema } = await dist('config/schema.js');
const { RedisStore } = await dist('store/redis/store.js');
const { importInventory } = await dist('store/transfer.js');
const { hashToken, mintToken, newId } = await dist('store/token-format.js');

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const COUNT = Number(process.env.COUNT ?? 100_000);
const REPLICAS = Number(process.env.REPLICAS ?? 3);
const REVOCATIONS = Number(process.env.REVOCATIONS ?? 40);
const CLI_RUNS = Number(process.env.CLI_RUNS ?? 3);
const REQUESTS = Number(process.env.REQUESTS ?? 2_000);
const prefix = `kgbench:${randomBytes(4).toString('hex')}:`;
const work = mkdtempSync(join(tmpdir(), 'kg-fleet-replicas-'));
const results = { count: COUNT, replicas: REPLICAS, redis: REDIS_URL, loadAverageAtStart: (await import('node:os')).loadavg().map((x) => Math.round(x * 10) / 10) };

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] : NaN;
};
const r1 = (x) => Math.round(x * 10) / 10;
const summary = (xs) => ({ n: xs.length, p50: r1(pct(xs, 50)), p99: r1(pct(xs, 99)), max: r1(Math.max(...xs)) });

// ---- the inventory ---------------------------------------------------------------------------

/** COUNT tokens over COUNT/100 accounts; the first PROBES secrets are kept to probe with. */
function inventory(n, probes) {
  const at = new Date().toISOString();
  const account = (name, roles) => ({ name, description: 'bench', owner: 'ops@example.com', endDate: null, roles, scopes: [], policy: null, disabled: false, createdAt: at, updatedAt: at });
  const token = (acct, hash) => ({ id: newId('tok'), account: acct, label: 'bench', hash, environment: null, scopes: null, policy: null, status: 'active', createdAt: at, expiresAt: null, revokedAt: null, revokeReason: null, rotatedFrom: null, rotatedTo: null });
  const accountCount = Math.max(1, Math.round(n / 100));
  const accounts = [account('ops', ['admin'])];
  for (let i = 0; i < accountCount; i++) accounts.push(account(`svc-${i}`, ['reader']));
  const adminSecret = mintToken(null);
  const tokens = [token('ops', hashToken(adminSecret))];
  const probe = [];
  for (let i = 0; i < n - 1; i++) {
    // Only the probes need a real secret; the rest need a unique hash, cheaper than minting.
    const secret = i < probes ? mintToken(null) : `bench-${i}-${prefix}`;
    const t = token(`svc-${i % accountCount}`, hashToken(secret));
    tokens.push(t);
    if (i < probes) probe.push({ id: t.id, secret });
  }
  return { data: { version: 1, accounts, tokens, certificates: [] }, adminSecret, probe };
}

function configText({ upstreamPort, store }) {
  return `listen:
  host: 127.0.0.1
  port: 0
  tls: { cert: pki/server.crt, key: pki/server.key }
admin: { host: 127.0.0.1, port: 0 }
routes:
  - { pathPrefix: /, upstream: "http://127.0.0.1:${upstreamPort}", timeout: 30s }
scopes:
  items:read: [GET /api/v1/items, GET /api/v1/items/**]
roles:
  reader: [items:read]
  admin: [keygate:admin]
policies:
  # A bucket is taken on every request (one Redis round trip), far above what is sent.
  default: { rate: 1000000/s, burst: 1000000 }
# Every revocation is probed until refused, a failed authentication each: more than the default
# budget of 30 per client address, which would turn the later probes into 429s on its own clock.
authFailures: { rate: 100/s, burst: 100000 }
${store}
audit: { output: audit.log }
log: { level: info }
shutdown: { drainTimeout: 2s }
`;
}

// ---- processes -------------------------------------------------------------------------------

async function startReplica(configFile, name) {
  const t0 = performance.now();
  // CPU_PROF_DIR: each replica writes a CPU profile there when it stops.
  const prof = process.env.CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CPU_PROF_DIR}`] : [];
  const child = start(process.execPath, [...prof, CLI, 'serve', '-c', configFile], { cwd: work });
  const log = [];
  const ready = waitForLine(child, 'stderr', (line) => (line.includes('keygate listening') ? JSON.parse(line) : undefined), 180_000, name);
  const listening = await ready;
  const startMs = performance.now() - t0;
  // Keep draining both pipes: a full pipe would block the replica's logging.
  child.stderr.on('data', (d) => log.push(String(d)));
  child.stdout.on('data', () => undefined);
  const portOf = (a) => Number(a.slice(a.lastIndexOf(':') + 1));
  return { name, child, port: portOf(listening.https), adminPort: portOf(listening.admin), startMs, rss: memoryMiB(child.pid), log };
}

function cli(args, configFile) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args, '-c', configFile], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`keygate ${args.join(' ')}: exit ${code}: ${err}`));
      else resolve({ ms: performance.now() - t0, out });
    });
  });
}

let ca;
const agents = new Map();
function call(port, { path = '/api/v1/items/1', method = 'GET', token, body } = {}) {
  let agent = agents.get(port);
  if (!agent) agents.set(port, (agent = new https.Agent({ keepAlive: true, maxSockets: 32 })));
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, servername: 'localhost', path, method, ca, agent, headers: { 'x-api-key': token, ...(body && { 'content-type': 'application/json' }) }, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

function adminCall(port, method, path, token, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, timeout: 30_000 }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * Polls every replica with `secret` until each refuses it; ms since `t0` when the last did. A
 * refused token is 401, or 429 once this client's failed-authentication bucket is empty (after
 * some thirty refusals from one address): both mean the revocation is enforced.
 */
async function untilAll(replicas, secret, t0, timeoutMs = 10_000) {
  const seen = await Promise.all(
    replicas.map(async (r) => {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const s = await call(r.port, { token: secret });
        if (s === 401 || s === 429) return performance.now() - t0;
        if (performance.now() > deadline) throw new Error(`${r.name}: still ${s} after ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 2));
      }
    }),
  );
  return Math.max(...seen);
}

// ---- the run ---------------------------------------------------------------------------------

const admin = new Redis(REDIS_URL, { protocol: 2, maxRetriesPerRequest: 1 });
process.on('SIGINT', () => {
  killAllNow();
  process.exit(130);
});
try {
  const pki = await mintPki(DIST, join(work, 'pki'));
  ca = readFileSync(pki.caCert, 'utf8');
  const upstream = start(process.execPath, [fileURLToPath(new URL('./lib/upstream.mjs', import.meta.url))]);
  const { port: upstreamPort } = await waitForLine(upstream, 'stdout', (l) => JSON.parse(l), 10_000, 'upstream');
  const redisConfigFile = join(work, 'keygate-redis.yaml');
  writeFileSync(redisConfigFile, configText({ upstreamPort, store: `store:\n  redis: { url: "${REDIS_URL}", prefix: "${prefix}", commandTimeout: 10s }\n  usageFlushInterval: 5s\n  startTimeout: 120s` }));

  // Load: one atomic import through the store API (the CLI would first parse a 40 MB YAML).
  const { data, adminSecret, probe } = inventory(COUNT, REVOCATIONS + 2);
  const redisConfig = configSchema.parse({ listen: { tls: { cert: 'x', key: 'x' } }, routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:1' }], store: { redis: { url: REDIS_URL, prefix, commandTimeout: '30s' } } }).store.redis;
  const writer = new RedisStore(redisConfig, { actor: 'bench' });
  let t = performance.now();
  await importInventory(writer, data, { actor: 'bench' });
  results.import = { records: data.accounts.length + data.tokens.length, ms: r1(performance.now() - t) };
  await writer.close();

  // ---- start-up: one replica alone, then the others at once
  const replicas = [await startReplica(redisConfigFile, 'replica-0')];
  replicas.push(...(await Promise.all(Array.from({ length: REPLICAS - 1 }, (_, i) => startReplica(redisConfigFile, `replica-${i + 1}`)))));
  await new Promise((res) => setTimeout(res, 2_000));
  results.loadAverageAfterStartup = (await import('node:os')).loadavg().map((x) => r1(x));
  results.startup = {
    aloneMs: r1(replicas[0].startMs),
    togetherMs: replicas.slice(1).map((r) => r1(r.startMs)),
    rssMiBAtListening: replicas.map((r) => Math.round(r.rss.current)),
    rssMiBAfter2s: replicas.map((r) => Math.round(memoryMiB(r.child.pid).current)),
    peakRssMiB: replicas.map((r) => Math.round(memoryMiB(r.child.pid).peak)),
    note: 'spawn → "keygate listening": node start, connect, snapshot of the inventory, cross-checks, index',
  };
  for (const r of replicas) if ((await call(r.port, { token: probe[0].secret })) !== 200) throw new Error(`${r.name} does not admit a known token`);
  // /metrics carries one keygate_credential_expiry_timestamp_seconds series per credential.
  const scrapes = [];
  let scrapeBytes = 0;
  for (let i = 0; i < 3; i++) {
    const s0 = performance.now();
    const text = await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: replicas[0].adminPort, path: '/metrics' }, (res) => { let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d)); res.on('end', () => resolve(b)); }).on('error', reject));
    scrapes.push(performance.now() - s0);
    scrapeBytes = text.length;
  }
  results.metricsScrape = { ms: summary(scrapes), mb: r1(scrapeBytes / 1048576), note: 'GET /metrics on one replica: one expiry series per credential' };

  // ---- revocations: admin API of replica 0 → every replica refuses; a prober measures stalls
  const stalls = [];
  let probing = true;
  const prober = (async () => {
    const secret = probe[probe.length - 1].secret;
    while (probing) {
      const s = performance.now();
      await call(replicas[1].port, { token: secret });
      stalls.push(performance.now() - s);
    }
  })();
  const idle = [];
  for (let i = 0; i < 200; i++) {
    const s = performance.now();
    await call(replicas[2].port, { token: probe[probe.length - 2].secret });
    idle.push(performance.now() - s);
  }
  const revocation = [];
  const apiOnly = [];
  for (let i = 0; i < REVOCATIONS; i++) {
    const { id, secret } = probe[i];
    const t0 = performance.now();
    const res = await adminCall(replicas[0].adminPort, 'POST', `/admin/v1/tokens/${id}/revoke`, adminSecret, { reason: 'bench' });
    if (res.status !== 200) throw new Error(`revoke ${id}: ${res.status} ${res.text}`);
    apiOnly.push(performance.now() - t0);
    revocation.push(await untilAll(replicas, secret, t0));
  }
  probing = false;
  await prober;
  results.loadAverageAfterRevocations = (await import('node:os')).loadavg().map((x) => r1(x));
  results.revocation = {
    toAllReplicas: summary(revocation),
    adminApiCall: summary(apiOnly),
    series: revocation.map((x, i) => [Math.round(apiOnly[i]), Math.round(x)]),
    requestLatencyIdleMs: summary(idle),
    requestLatencyWhileRevokingMs: summary(stalls),
    note: 'ms from the admin API call (replica 0) to the last replica refusing the token, 401 or 429 (series: [call, to all] per revocation, in order); requests to replica 1 meanwhile show what applying a change stalls',
  };

  // ---- CLI at that size
  const creates = [];
  const lists = [];
  const revokes = [];
  const shows = [];
  for (let i = 0; i < CLI_RUNS; i++) {
    const c = await cli(['token', 'create', '--account', 'svc-0', '--json'], redisConfigFile);
    creates.push(c.ms);
    const created = JSON.parse(c.out);
    lists.push((await cli(['token', 'list', '--format', 'json'], redisConfigFile)).ms);
    const t0 = performance.now();
    const rv = await cli(['token', 'revoke', created.id], redisConfigFile);
    revokes.push(rv.ms);
    if (i === 0) results.cliRevocationToAllReplicasMs = r1(await untilAll(replicas, created.token, t0));
    shows.push((await cli(['account', 'show', `svc-${i + 1}`], redisConfigFile)).ms);
  }
  results.cli = { tokenCreate: summary(creates), tokenList: summary(lists), tokenRevoke: summary(revokes), accountShow: summary(shows), note: 'ms per command: node start, config, connect, snapshot of the inventory, the command, exit' };

  // ---- limit latency: store.redis vs the file store, same policy, same run
  const fileConfigFile = join(work, 'keygate-file.yaml');
  writeFileSync(fileConfigFile, configText({ upstreamPort, store: 'store: { file: credentials.yaml }' }));
  await cli(['account', 'create', '--name', 'svc', '--role', 'reader'], fileConfigFile);
  const fileToken = JSON.parse((await cli(['token', 'create', '--account', 'svc', '--json'], fileConfigFile)).out).token;
  const fileReplica = await startReplica(fileConfigFile, 'file-replica');
  const target = { redis: { port: replicas[2].port, token: probe[probe.length - 2].secret }, file: { port: fileReplica.port, token: fileToken } };
  const sequential = { redis: [], file: [] };
  const concurrent = { redis: [], file: [] };
  for (let round = 0; round < 4; round++) {
    for (const kind of round % 2 ? ['file', 'redis'] : ['redis', 'file']) {
      const { port, token } = target[kind];
      for (let i = 0; i < 200; i++) await call(port, { token }); // warm
      for (let i = 0; i < REQUESTS / 4; i++) {
        const s = performance.now();
        const st = await call(port, { token });
        if (st !== 200) throw new Error(`${kind}: ${st}`);
        sequential[kind].push(performance.now() - s);
      }
      let left = REQUESTS / 4;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (left-- > 0) {
            const s = performance.now();
            await call(port, { token });
            concurrent[kind].push(performance.now() - s);
          }
        }),
      );
    }
  }
  results.limitLatencyMs = {
    sequential: { redis: summary(sequential.redis), file: summary(sequential.file) },
    inFlight16: { redis: summary(concurrent.redis), file: summary(concurrent.file) },
    note: 'a request through keygate (TLS keep-alive, token lookup, limit, upstream); the policy takes a bucket on every request; store.redis: one round trip to Redis per request',
  };
  results.loadAverage = (await import('node:os')).loadavg().map((x) => r1(x));
  console.log(JSON.stringify(results, null, 2));
} finally {
  for (const a of agents.values()) a.destroy();
  await stopAll(5_000);
  let cursor = '0';
  for (let i = 0; i < 1_000_000; i++) {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await admin.del(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  admin.disconnect();
  if (process.env.KEEP === '1') console.error(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

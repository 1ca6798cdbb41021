// The file credential store at 100,000 credentials (not a test): what the running proxy and
// each CLI command pay at that size.
//
//   npm run build && node bench/inventory-scale.mjs      (ACCOUNTS, TOKENS, CERTS, SHRINK_TO)
//
// Builds a store of ACCOUNTS accounts, TOKENS tokens and CERTS certificate bindings (default
// 10,000 / 80,000 / 10,000) in keygate's layout, starts the built proxy on it, and measures:
// start-up time and RSS; while `keygate token revoke` runs, the latency of requests sent one
// after another and the proxy's own largest event-loop delay (prom-client's
// keygate_nodejs_eventloop_lag_max_seconds, read before and after); the time until the revoked
// token is refused; the wall time of each CLI command; the same revocation through the admin
// API; RSS right after those changes and 10 s later; and RSS after the inventory shrinks to
// SHRINK_TO credentials. Prints a markdown table. ONLY_START=1 stops after the start-up rows.
// Give NODE_OPTIONS="--require <file>" to look inside the proxy (it inherits the environment).
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { mintPki } from './lib/setup.mjs';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const CLI = join(dist, 'cli/keygate.js');
const { serializeStore } = await import(join(dist, 'store/file/layout.js'));
const { mintToken, hashToken } = await import(join(dist, 'store/token-format.js'));
const run = promisify(execFile);

const ACCOUNTS = Number(process.env.ACCOUNTS ?? 10_000);
const TOKENS = Number(process.env.TOKENS ?? 80_000);
const CERTS = Number(process.env.CERTS ?? 10_000);
const SHRINK_TO = Number(process.env.SHRINK_TO ?? 1_000);
const work = mkdtempSync(join(tmpdir(), 'kg-inventory-bench-'));
const children = new Set();
const rows = [];
const row = (what, value, note = '') => rows.push({ what, value, note });
const ms = (x) => `${Math.round(x)} ms`;
const mb = (b) => `${Math.round(b / 1048576)} MB`;

process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

// ---- the inventory --------------------------------------------------------------------------

const at = new Date().toISOString();
const day = 86_400_000;
const known = []; // secrets of a few tokens, to send requests with
function inventory(accounts, tokens, certs, secrets = 0) {
  const data = { version: 1, accounts: [], tokens: [], certificates: [] };
  data.accounts.push({ name: 'ops-admin', description: 'bench admin', owner: 'ops@example.com', endDate: null, roles: [], scopes: ['keygate:admin'], policy: null, disabled: false, createdAt: at, updatedAt: at });
  for (let i = 0; i < accounts - 1; i++) data.accounts.push({ name: `svc-${i}`, description: `service ${i}`, owner: `team-${i % 97}@example.com`, endDate: i % 10 === 0 ? '2031-12-31' : null, roles: ['reader'], scopes: [], policy: null, disabled: i % 50 === 49, createdAt: at, updatedAt: at });
  for (let i = 0; i < tokens; i++) {
    const account = i === 0 ? 'ops-admin' : `svc-${i % (accounts - 1)}`;
    let hash;
    if (i < secrets) {
      const secret = mintToken(null);
      known.push({ secret, id: null });
      hash = hashToken(secret);
    } else hash = createHash('sha256').update(`bench-${i}`).digest('hex');
    const id = `tok_${i.toString(36).padStart(14, '0')}`;
    if (i < secrets) known[i].id = id;
    data.tokens.push({ id, account, label: `deploy ${i}`, hash, environment: null, scopes: null, policy: null, status: i % 20 === 19 ? 'revoked' : 'active', createdAt: at, expiresAt: i % 3 ? new Date(Date.now() + (30 + (i % 300)) * day).toISOString() : null, revokedAt: i % 20 === 19 ? at : null, revokeReason: null, rotatedFrom: null, rotatedTo: null });
  }
  for (let i = 0; i < certs; i++) {
    const fp = createHash('sha256').update(`cert-${i}`).digest('hex');
    data.certificates.push({ id: `sha256:${fp}`, account: `svc-${i % (accounts - 1)}`, match: 'fingerprint', value: fp, nickname: `pod ${i}`, endDate: null, scopes: null, policy: null, createdAt: at, serial: null, notAfter: new Date(Date.now() + 90 * day).toISOString() });
  }
  return data;
}

const pki = await mintPki(dist, join(work, 'pki'));
const upstream = http.createServer((_req, res) => res.end('{"ok":true}'));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const configFile = join(work, 'keygate.yaml');
const storeFile = join(work, 'credentials.yaml');
writeFileSync(
  configFile,
  `listen: { host: 127.0.0.1, port: 0, tls: { cert: pki/server.crt, key: pki/server.key } }
admin: { host: 127.0.0.1, port: 0 }
routes: [{ pathPrefix: /, upstream: "http://127.0.0.1:${upstream.address().port}" }]
scopes: { items:read: [GET /api/v1/items/**] }
roles: { reader: [items:read] }
policies: { default: { rate: 1000000/s, burst: 1000000 } }
store: { file: credentials.yaml }
audit: { output: ${join(work, 'audit.log')} }
`,
);
let t = performance.now();
const full = inventory(ACCOUNTS, TOKENS, CERTS, 5);
writeFileSync(storeFile, serializeStore(full), { mode: 0o600 });
const total = full.accounts.length + full.tokens.length + full.certificates.length;
const size = statSync(storeFile).size;
console.error(`store: ${full.accounts.length} accounts, ${full.tokens.length} tokens, ${full.certificates.length} bindings, ${(size / 1e6).toFixed(1)} MB, written in ${ms(performance.now() - t)}`);

// ---- the proxy ---------------------------------------------------------------------------

const rss = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
t = performance.now();
const proxy = spawn(process.execPath, [CLI, 'serve', '-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
children.add(proxy);
const addr = await new Promise((resolve, reject) => {
  let err = '';
  proxy.stderr.on('data', (d) => {
    err += d;
    const line = err.split('\n').find((l) => l.includes('keygate listening'));
    if (line) resolve(JSON.parse(line));
  });
  proxy.on('exit', (code) => reject(new Error(`keygate exited with ${code}:\n${err}`)));
});
const startMs = performance.now() - t;
const port = Number(addr.https.split(':').pop());
const adminPort = Number(addr.admin.split(':').pop());
row('proxy start-up (to listening)', ms(startMs));
await new Promise((r) => setTimeout(r, 3000));
row('proxy RSS after start-up', mb(rss(proxy.pid)));
if (process.env.ONLY_START) {
  proxy.kill('SIGTERM');
  console.log(rows);
  process.exit(0);
}

const ca = readFileSync(pki.caCert);
const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
function get(secret, path = '/api/v1/items/1') {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = https.request({ host: '127.0.0.1', port, servername: 'localhost', path, agent, headers: { 'x-api-key': secret } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0 }));
    });
    req.on('error', reject);
    req.end();
  });
}
function adminGetText(path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: adminPort, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
const lagMax = async () => Number(/^keygate_nodejs_eventloop_lag_max_seconds (\S+)/m.exec(await adminGetText('/metrics'))?.[1] ?? NaN) * 1000;

/**
 * Requests with `steady` one after another while `change` runs, until `victim` is refused.
 * Returns the revocation's time to enforcement (from the start of the change) and the
 * requests' latencies.
 */
async function duringChange(change, victim, steady, limitMs = 30_000) {
  await lagMax(); // resets the proxy's histogram
  const latencies = [];
  const t0 = performance.now();
  let changeMs;
  let enforcedMs;
  const changing = change().then(() => (changeMs = performance.now() - t0));
  while (performance.now() - t0 < limitMs) {
    const a = await get(steady);
    latencies.push(a.ms);
    if (a.status !== 200) throw new Error(`the steady token got ${a.status}`);
    const b = await get(victim);
    latencies.push(b.ms);
    if (b.status === 401) {
      enforcedMs = performance.now() - t0;
      break;
    }
  }
  await changing;
  const stall = await lagMax();
  latencies.sort((x, y) => x - y);
  return { enforcedMs, changeMs, stall, max: latencies.at(-1), p99: latencies[Math.floor(latencies.length * 0.99)], n: latencies.length };
}

const [admin, steady, victim, victim2, gone0] = known;
if ((await get(steady.secret)).status !== 200 || (await get(gone0.secret)).status !== 200) throw new Error('a known token is refused');
// Warm both connections and the proxy's code paths.
for (let i = 0; i < 200; i++) await get(steady.secret);

const cli = async (args) => {
  const t0 = performance.now();
  const r = await run(process.execPath, [CLI, ...args, '-c', configFile], { maxBuffer: 256 << 20 });
  return { ms: performance.now() - t0, stdout: r.stdout };
};

let r = await duringChange(() => cli(['token', 'revoke', victim.id, '--reason', 'bench']), victim.secret, steady.secret);
row('`token revoke` (CLI): refused by the proxy after', ms(r.enforcedMs), `from the CLI's start; the CLI took ${ms(r.changeMs)}, so ${ms(Math.max(0, r.enforcedMs - r.changeMs))} after it exited`);
row('requests during that change: max / p99 latency', `${ms(r.max)} / ${ms(r.p99)}`, `${r.n} requests, one at a time`);
row('proxy event loop during that change: max delay', ms(r.stall), 'keygate_nodejs_eventloop_lag_max_seconds');

r = await duringChange(
  () =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: adminPort, method: 'POST', path: `/admin/v1/tokens/${victim2.id}/revoke`, headers: { authorization: `Bearer ${admin.secret}`, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`admin revoke: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end('{}');
    }),
  victim2.secret,
  steady.secret,
);
row('revoke through the admin API: refused after', ms(r.enforcedMs), `answer after ${ms(r.changeMs)}`);
row('requests during that change: max / p99 latency', `${ms(r.max)} / ${ms(r.p99)}`, `${r.n} requests`);
row('proxy event loop during that change: max delay', ms(r.stall), '');
row('proxy RSS after the changes', mb(rss(proxy.pid)));
// The same 10 s later, serving 50 requests a second: V8 gives back its young generation and
// the changes' garbage only once the allocation rate drops (its memory reducer, ~8 s).
for (let i = 0; i < 10; i++) {
  for (let j = 0; j < 50; j++) await get(steady.secret);
  await new Promise((res) => setTimeout(res, 1000));
}
row('proxy RSS 10 s after the changes', mb(rss(proxy.pid)), '50 requests a second meanwhile');

// ---- the CLI ----------------------------------------------------------------------------

const created = JSON.parse((await cli(['token', 'create', '--account', 'svc-7', '--label', 'bench', '--json'])).stdout);
const commands = [
  ['token', 'create', '--account', 'svc-7', '--label', 'bench', '--json'],
  ['token', 'revoke', created.id],
  ['token', 'restore', created.id],
  ['token', 'rotate', created.id, '--overlap', '1h'],
  ['token', 'list', '--account', 'svc-7'],
  ['token', 'list', '--format', 'csv'],
  ['account', 'show', 'svc-7'],
  ['account', 'list'],
  ['account', 'create', '--name', 'bench-new'],
  ['account', 'disable', 'bench-new'],
  ['check'],
];
for (const args of commands) {
  const c = await cli(args);
  row(`\`keygate ${args.filter((a) => !a.startsWith('tok_')).join(' ')}\``, ms(c.ms), args.includes('list') ? `${c.stdout.split('\n').length - 1} lines out` : '');
}

// ---- shrinking ----------------------------------------------------------------------------

const small = inventory(Math.max(2, Math.round(SHRINK_TO / 10)), Math.round(SHRINK_TO * 0.8), Math.round(SHRINK_TO / 10));
small.tokens[1] = { ...full.tokens[1] }; // the steady token stays
const tmp = `${storeFile}.bench-tmp`;
writeFileSync(tmp, serializeStore(small), { mode: 0o600 });
renameSync(tmp, storeFile);
const gone = known[4]; // active until the shrink removes it
t = performance.now();
while ((await get(gone.secret)).status !== 401 && performance.now() - t < 60_000) await new Promise((res) => setTimeout(res, 50));
row(`shrink to ${small.accounts.length + small.tokens.length + small.certificates.length} credentials: applied after`, ms(performance.now() - t));
for (let i = 0; i < 10; i++) {
  for (let j = 0; j < 50; j++) await get(steady.secret);
  await new Promise((res) => setTimeout(res, 1000));
}
row('proxy RSS 10 s after shrinking', mb(rss(proxy.pid)));

proxy.kill('SIGTERM');
await new Promise((res) => proxy.on('exit', res));
agent.destroy();
upstream.close();

const load = loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(`\n### File store at ${total.toLocaleString('en')} credentials (${full.accounts.length} accounts, ${full.tokens.length} tokens, ${full.certificates.length} bindings; ${(size / 1e6).toFixed(1)} MB)\n`);
console.log(`node ${process.version}, load average ${load} (after the run)\n`);
console.log('| measure | value | note |\n| --- | ---: | --- |');
for (const x of rows) console.log(`| ${x.what} | ${x.value} | ${x.note} |`);
// The last stdout line, one JSON object: what `npm run bench` (bench/run.mjs, EXTERNAL) records.
console.log(JSON.stringify({ credentials: total, load, rows: Object.fromEntries(rows.map((x) => [x.what, x.value])) }));

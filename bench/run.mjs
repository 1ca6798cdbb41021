// `npm run bench`: what keygate costs on top of calling the upstream directly.
//
// Starts an upstream (bench/lib/upstream.mjs), the real `keygate serve` from dist/ with a
// freshly minted PKI and a config in which TLS, token lookup, the scope check, the rate limit,
// the audit log (to a file) and metrics are all on, then load-tests in alternation:
//   direct   the upstream over plain HTTP
//   token    keygate over TLS with a valid API token (x-api-key)
//   mtls     keygate's client-certificate port (CN binding), unless MTLS=0
//   h2       the token row's request over HTTP/2 (bench/lib/loadgen-h2.mjs), unless H2=0
//   grpc     a gRPC unary call (@grpc/grpc-js client) through keygate to a grpc-js server
//            over h2c (bench/lib/grpc-upstream.mjs), unless H2=0
// and prints req/s, p50/p99 latency, errors, the ratio to direct, and keygate's CPU time per
// request from /proc/<pid>/stat — the figure that depends least on load and machine noise.
//
// Knobs (environment): DURATION=8 (s per measurement), WARMUP=3 (s per target, once),
// ROUNDS=2, CONNECTIONS=64, LOADGEN=auto|autocannon|wrk (auto: wrk when on PATH),
// TARGETS=token,h2,… (only these, besides direct), MTLS=1, H2=1, H2_SESSIONS=4 (HTTP/2 connections of the h2 and grpc rows, sharing CONNECTIONS
// requests in flight between them), PIN=auto|on|off (auto: pin when taskset exists and there are 2+ CPUs),
// KEYGATE_CPUS=0, LOADGEN_CPUS=1 (taskset lists; the upstream shares the load generator's),
// KEEP=1 (keep the temp folder: config, audit log, keygate's log), CPU_PROF=1 (run keygate
// under --cpu-prof; the .cpuprofile is copied to bench/results/), WORKERS=1 (keygate.yaml's
// `workers`; with more than one, PIN=auto does not pin — a pinned supervisor would pin every
// worker to its one CPU — and keygate's CPU is summed over the supervisor and its workers).
// External rows (EXTERNAL below): a script in bench/ that measures something a load run
// cannot — e.g. `inventory`, bench/inventory-scale.mjs (100k credentials) — runs after the
// load runs when its file exists, unless TARGETS leaves it out or INVENTORY=0; it prints one
// JSON object on its last stdout line, which goes into the results file and the table.
// Everything listens on 127.0.0.1 with ports the kernel picked, every child process is
// stopped on exit, error or Ctrl-C, and every load run is bounded in time.
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, hasProcStat, killAllNow, start, stop, stopAll, taskset, treeCpuSeconds, treeMemoryMiB, waitExit, waitForLine } from './lib/proc.mjs';
import { ACCOUNT, BENCH_PATH, CLIENT_CN, DENIED_PATH, GRPC_PATH, benchConfig, createCredentials, mintPki } from './lib/setup.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const DIST = join(ROOT, 'dist');
const CLI = join(DIST, 'cli/keygate.js');

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  const head = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
  process.stdout.write(head.slice(0, head.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
  process.exit(0);
}

// ---- knobs -------------------------------------------------------------------------------
const env = process.env;
/** A wrong knob or a missing prerequisite: one line, no stack trace, nothing started yet. */
const fail = (msg) => {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
};
const int = (name, dflt, min, max) => {
  const v = env[name] === undefined || env[name] === '' ? dflt : Number(env[name]);
  if (!Number.isInteger(v) || v < min || v > max) fail(`${name} must be an integer from ${min} to ${max}`);
  return v;
};
const knobs = {
  duration: int('DURATION', 8, 1, 600),
  warmup: int('WARMUP', 3, 0, 120),
  rounds: int('ROUNDS', 2, 1, 50),
  connections: int('CONNECTIONS', 64, 1, 4096),
  loadgen: env.LOADGEN ?? 'auto',
  mtls: env.MTLS !== '0',
  h2: env.H2 !== '0',
  h2Sessions: int('H2_SESSIONS', 4, 1, 256),
  targets: env.TARGETS ? env.TARGETS.split(',').map((t) => t.trim()).filter(Boolean) : undefined,
  pin: env.PIN ?? 'auto',
  keygateCpus: env.KEYGATE_CPUS ?? '0',
  loadgenCpus: env.LOADGEN_CPUS ?? '1',
  keep: env.KEEP === '1',
  cpuProf: env.CPU_PROF === '1',
  workers: int('WORKERS', 1, 1, 64),
  inventory: env.INVENTORY !== '0',
};

/**
 * Rows measured by a script of their own, run once after the load runs (keygate stopped), when
 * the script exists. The script gets the environment, prints one JSON object on its last line
 * of stdout, and is killed after `timeoutS`. Add a row here; `summary(result)` gives its line.
 */
const EXTERNAL = [
  {
    name: 'inventory',
    label: 'keygate, 100k-credential inventory',
    script: 'inventory-scale.mjs',
    enabled: () => knobs.inventory,
    timeoutS: 900,
    summary: (r) => JSON.stringify(r).slice(0, 300),
  },
];
const onPath = (bin) => (env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, bin)));
if (!['auto', 'autocannon', 'wrk'].includes(knobs.loadgen)) fail('LOADGEN is auto, autocannon or wrk');
if (!['auto', 'on', 'off'].includes(knobs.pin)) fail('PIN is auto, on or off');
if (knobs.loadgen === 'auto') knobs.loadgen = onPath('wrk') ? 'wrk' : 'autocannon';
if (knobs.loadgen === 'wrk' && !onPath('wrk')) fail('LOADGEN=wrk but wrk is not on PATH (apt-get install wrk), or use LOADGEN=autocannon');
const pinning = knobs.pin === 'on' || (knobs.pin === 'auto' && knobs.workers === 1 && availableParallelism() >= 2 && taskset() !== null);
if (knobs.pin === 'on' && !taskset()) fail('PIN=on needs taskset (util-linux)');
if (!hasProcStat()) fail('this benchmark reads /proc/<pid>/stat: Linux only');
if (!existsSync(CLI)) fail(`${CLI} is missing: run npm run build (npm run bench does)`);

// ---- lifecycle: stop everything we started, whatever happens -------------------------------
let tmp;
let aborting = false;
async function cleanup() {
  await stopAll(4000);
  if (tmp && !knobs.keep) await rm(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    if (aborting) return;
    aborting = true;
    process.stderr.write(`\nbench: ${sig}, stopping…\n`);
    cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', killAllNow);

const log = (msg) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---- helpers ---------------------------------------------------------------------------------
function request(url, { headers = {}, ca, cert, key } = {}) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, { headers, ca, cert, key, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, error: err.code ?? err.message }));
    req.end();
  });
}

/** One GET over HTTP/2 (the functional check of the h2 row). */
async function h2Get(url, headers, ca) {
  const { default: http2 } = await import('node:http2');
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = http2.connect(u.origin, { ca, servername: 'localhost' });
    s.on('error', (err) => resolve({ status: 0, error: err.code ?? err.message }));
    const req = s.request({ ':path': u.pathname, ':authority': u.host, ...headers });
    let status = 0;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = h[':status']));
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      resolve({ status, body, alpn: s.alpnProtocol });
      s.close();
    });
    req.on('error', (err) => resolve({ status: 0, error: err.code ?? err.message }));
    req.setTimeout(5000, () => req.close());
  });
}

/** One gRPC unary call through keygate (the functional checks of the grpc row). */
async function grpcCall(port, caFile, metadata) {
  const grpc = await import('@grpc/grpc-js');
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(readFileSync(caFile)), { 'grpc.ssl_target_name_override': 'localhost' });
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  const id = (b) => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest(GRPC_PATH, id, id, Buffer.from('{}'), md, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err) resolve({ code: err.code, details: err.details, kg: err.metadata?.get('x-keygate-error')[0] });
      else resolve({ code: 0, body: res.toString('utf8') });
    });
  });
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const spread = (xs) => {
  const m = median(xs);
  return xs.length > 1 && m > 0 ? (Math.max(...xs) - Math.min(...xs)) / m : 0;
};

/** One load-generator run in a child process, pinned apart from keygate. */
async function loadRun(target, seconds) {
  const lg = target.loadgen;
  let child;
  if (lg === 'h2' || lg === 'grpc-js') {
    // Both Node load generators of the HTTP/2 rows take the same spec.
    const spec = { ...target.spec, duration: seconds, concurrency: knobs.connections, sessions: knobs.h2Sessions, channels: knobs.h2Sessions };
    child = start(process.execPath, [join(HERE, lg === 'h2' ? 'lib/loadgen-h2.mjs' : 'lib/loadgen-grpc.mjs')], { cpus: pinning ? knobs.loadgenCpus : undefined, env: { BENCH_SPEC: JSON.stringify(spec) } });
  } else if (lg === 'wrk') {
    // The token travels in the environment, not on the command line, where `ps` would show it.
    const args = ['-t1', `-c${knobs.connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', join(HERE, 'lib/wrk-report.lua')];
    child = start('wrk', [...args, target.url], { cpus: pinning ? knobs.loadgenCpus : undefined, env: { BENCH_HEADERS: JSON.stringify(target.headers) } });
  } else {
    const spec = { url: target.url, duration: seconds, connections: knobs.connections, headers: target.headers, tls: target.tls };
    child = start(process.execPath, [join(HERE, 'lib/loadgen-autocannon.mjs')], { cpus: pinning ? knobs.loadgenCpus : undefined, env: { BENCH_SPEC: JSON.stringify(spec) } });
  }
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c) => (err += c));
  const exited = await waitExit(child, (seconds + 30) * 1000);
  if (!exited) {
    await stop(child, 2000);
    throw new Error(`${lg} did not finish within ${seconds + 30} s`);
  }
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`${lg} gave no result: ${(err || out).trim().slice(-500)}`);
  const r = JSON.parse(line.slice(7));
  if (r.error) throw new Error(`${lg}: ${r.error}`);
  r.rps ??= r.requests / r.durationS;
  return r;
}

/** Counts audit lines and checks that they are JSON (every line of the first 1000, then a sample). */
async function countAuditLines(file) {
  let requests = 0;
  let lines = 0;
  let parsed = 0;
  let invalid = 0;
  let example;
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of rl) {
    lines++;
    if (line.includes('"event":"request"')) requests++;
    if (lines <= 1000 || lines % 101 === 0) {
      parsed++;
      try {
        JSON.parse(line);
      } catch {
        invalid++;
        example ??= line.slice(0, 120);
      }
    }
  }
  return { lines, requests, parsed, invalid, example, bytes: (await stat(file)).size };
}

function metricSum(text, name, filter) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (filter && !line.includes(filter)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The EXTERNAL rows whose script exists and that TARGETS (if given) names. */
async function runExternal() {
  const out = {};
  for (const x of EXTERNAL) {
    const file = join(HERE, x.script);
    if (!x.enabled() || !existsSync(file) || (knobs.targets && !knobs.targets.includes(x.name))) continue;
    log(`${x.name}: running bench/${x.script} (at most ${x.timeoutS} s)`);
    const child = start(process.execPath, [file], {});
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const exited = await waitExit(child, x.timeoutS * 1000);
    if (!exited) await stop(child, 5000);
    const last = stdout.trim().split('\n').pop() ?? '';
    try {
      if (!exited) throw new Error(`did not finish within ${x.timeoutS} s`);
      if (child.exitCode !== 0) throw new Error(`exited with ${child.exitCode}`);
      out[x.name] = { result: JSON.parse(last) };
    } catch (err) {
      out[x.name] = { error: `${err.message}; stderr: ${stderr.trim().slice(-300)}` };
    }
    log(`${x.name}: ${out[x.name].error ? 'failed' : 'done'}`);
  }
  return out;
}

const fmt = (v, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const pad = (s, n, left = false) => (left ? String(s).padEnd(n) : String(s).padStart(n));

// ---- main ----------------------------------------------------------------------------------
async function main() {
  const startedAt = new Date();
  const loadBefore = loadavg();
  tmp = await mkdtemp(join(tmpdir(), 'keygate-bench-'));
  const pkiDir = join(tmp, 'pki');
  const configFile = join(tmp, 'keygate.yaml');
  const auditFile = join(tmp, 'audit.log');
  const keygateLog = join(tmp, 'keygate.log');

  log(`temp folder ${tmp}${knobs.keep ? ' (kept)' : ''}`);
  const pki = await mintPki(DIST, pkiDir);
  const ca = readFileSync(pki.caCert);

  // upstream (shares the load generator's CPU, as in ../shared/bench's proxy-alone layout)
  const upstream = start(process.execPath, [join(HERE, 'lib/upstream.mjs')], { cpus: pinning ? knobs.loadgenCpus : undefined });
  const upstreamPort = await waitForLine(upstream, 'stdout', (l) => (l.startsWith('{') ? JSON.parse(l).port : undefined), 10_000, 'upstream');
  upstream.stderr.resume();

  let grpcUpstream;
  let grpcPort;
  if (knobs.h2) {
    grpcUpstream = start(process.execPath, [join(HERE, 'lib/grpc-upstream.mjs')], { cpus: pinning ? knobs.loadgenCpus : undefined });
    grpcPort = await waitForLine(grpcUpstream, 'stdout', (l) => (l.startsWith('{') ? JSON.parse(l).port : undefined), 10_000, 'grpc upstream');
    grpcUpstream.stderr.resume();
  }

  await writeFile(configFile, benchConfig({ upstreamPort, auditFile, grpcPort, workers: knobs.workers }));
  const creds = await createCredentials(CLI, configFile, join(tmp, 'credentials.yaml'));
  log(`account "${ACCOUNT}" with token ${creds.tokenId}; CN=${CLIENT_CN} bound via ${creds.bindVia === 'cli' ? '`keygate cert bind`' : 'the credential file (no `cert bind` in this build)'}`);

  // keygate itself: the real CLI entry, pinned alone to its CPU
  const nodeArgs = knobs.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(tmp, 'profile')] : [];
  if (knobs.cpuProf) await mkdir(join(tmp, 'profile'));
  const kg = start(process.execPath, [...nodeArgs, CLI, 'serve', '-c', configFile], { cpus: pinning ? knobs.keygateCpus : undefined, env: { KEYGATE_LOG_LEVEL: 'info' } });
  const kgLog = createWriteStream(keygateLog);
  kg.stdout.pipe(kgLog, { end: false });
  kg.stderr.pipe(kgLog, { end: false });
  const addrs = await waitForLine(
    kg,
    'stderr',
    (l) => {
      try {
        const j = JSON.parse(l);
        return j.msg === 'keygate listening' ? j : undefined;
      } catch {
        return undefined;
      }
    },
    20_000,
    'keygate',
  );
  const httpsPort = Number(addrs.https.split(':').pop());
  const mtlsPort = addrs.clientAuth ? Number(addrs.clientAuth.split(':').pop()) : undefined;
  const adminPort = Number(addrs.admin.split(':').pop());
  log(`keygate pid ${kg.pid}: https 127.0.0.1:${httpsPort}, client-cert 127.0.0.1:${mtlsPort}, admin 127.0.0.1:${adminPort}; upstream 127.0.0.1:${upstreamPort}`);

  // ---- functional checks: measure only what works --------------------------------------------
  const base = `https://127.0.0.1:${httpsPort}`;
  const mbase = `https://127.0.0.1:${mtlsPort}`;
  const tok = { 'x-api-key': creds.token };
  const checks = [];
  const check = (name, ok, detail) => {
    checks.push({ name, ok: Boolean(ok), detail });
    if (!ok) log(`CHECK FAILED: ${name}: ${detail}`);
  };
  let r = await request(`${base}${BENCH_PATH.replace(/[^/]+$/, 'echo')}`, { headers: tok, ca });
  let seen = r.status === 200 ? JSON.parse(r.body) : {};
  check('token: 200 with identity headers, credential stripped', r.status === 200 && seen['x-keygate-account'] === ACCOUNT && !seen['x-api-key'], `${r.status} ${r.body ?? r.error}`);
  check('token: RateLimit-* headers', r.headers?.['ratelimit-limit'] !== undefined, JSON.stringify(r.headers ?? {}));
  r = await request(`${base}${BENCH_PATH}`, { headers: { 'x-api-key': creds.token.slice(0, -2) + (creds.token.endsWith('AA') ? 'BB' : 'AA') }, ca });
  check('token: wrong token is 401', r.status === 401, String(r.status));
  r = await request(`${base}${DENIED_PATH}`, { headers: tok, ca });
  check('token: path outside the scopes is 403', r.status === 403, String(r.status));
  r = await request(`${base}/`, { headers: tok, ca });
  check('token: / is outside the scopes too (403)', r.status === 403, String(r.status));
  if (knobs.mtls) {
    r = await request(`${mbase}${BENCH_PATH.replace(/[^/]+$/, 'echo')}`, { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
    seen = r.status === 200 ? JSON.parse(r.body) : {};
    check('mtls: 200, account and XFCC forwarded', r.status === 200 && seen['x-keygate-account'] === ACCOUNT && String(seen['x-forwarded-client-cert'] ?? '').includes(CLIENT_CN), `${r.status} ${r.body ?? r.error}`);
    r = await request(`${mbase}${BENCH_PATH}`, { ca });
    check('mtls: no client certificate is not 200', r.status !== 200, `${r.status} ${r.error ?? ''}`);
  }
  if (knobs.h2) {
    const h2 = await h2Get(`${base}${BENCH_PATH.replace(/[^/]+$/, 'echo')}`, tok, ca);
    seen = h2.status === 200 ? JSON.parse(h2.body) : {};
    check('h2: ALPN h2, 200 with identity headers, credential stripped', h2.alpn === 'h2' && h2.status === 200 && seen['x-keygate-account'] === ACCOUNT && !seen['x-api-key'], `${h2.alpn} ${h2.status} ${h2.body ?? h2.error}`);
    const g = await grpcCall(httpsPort, pki.caCert, { 'x-api-key': creds.token, 'x-bench-echo': '1' });
    check('grpc: unary OK, account forwarded', g.code === 0 && JSON.parse(g.body ?? '{}').account === ACCOUNT, `${g.code} ${g.body ?? g.details}`);
    const denied = await grpcCall(httpsPort, pki.caCert, { 'x-api-key': creds.token.slice(0, -2) + (creds.token.endsWith('AA') ? 'BB' : 'AA') });
    check('grpc: wrong token is UNAUTHENTICATED (16) with KG_ERR code', denied.code === 16 && String(denied.kg ?? '').startsWith('KG_ERR_'), `${denied.code} ${denied.kg}`);
  }
  if (checks.some((c) => !c.ok)) throw new Error('functional checks failed; see above (keygate log: ' + keygateLog + ')');
  log(`functional checks passed (${checks.length})`);

  // ---- targets -------------------------------------------------------------------------------
  const targets = [
    { name: 'direct', label: 'upstream direct (http)', url: `http://127.0.0.1:${upstreamPort}${BENCH_PATH}`, headers: {}, loadgen: knobs.loadgen, proxied: false },
    { name: 'token', label: 'keygate, API token (TLS)', url: `${base}${BENCH_PATH}`, headers: tok, loadgen: knobs.loadgen, proxied: true },
  ];
  if (knobs.mtls) {
    // wrk has no client-certificate option: the client-certificate target always uses autocannon.
    targets.push({ name: 'mtls', label: 'keygate, client cert (TLS)', url: `${mbase}${BENCH_PATH}`, headers: {}, tls: { cert: pki.clientCert, key: pki.clientKey }, loadgen: 'autocannon', proxied: true });
  }
  if (knobs.h2) {
    const authority = `localhost:${httpsPort}`;
    targets.push({ name: 'h2', label: 'keygate, API token (h2)', loadgen: 'h2', proxied: true, spec: { url: `https://${authority}${BENCH_PATH}`, headers: tok, ca: pki.caCert, servername: 'localhost' } });
    targets.push({ name: 'grpc', label: 'keygate, gRPC unary (h2c)', loadgen: 'grpc-js', proxied: true, spec: { target: `127.0.0.1:${httpsPort}`, path: GRPC_PATH, metadata: tok, ca: pki.caCert, servername: 'localhost' } });
  }
  if (knobs.targets) {
    const unknown = knobs.targets.filter((t) => !targets.some((x) => x.name === t) && !EXTERNAL.some((x) => x.name === t));
    if (unknown.length) throw new Error(`TARGETS names ${unknown.join(', ')}: not among ${[...targets, ...EXTERNAL].map((t) => t.name).join(', ')}`);
    for (let i = targets.length - 1; i >= 0; i--) if (targets[i].name !== 'direct' && !knobs.targets.includes(targets[i].name)) targets.splice(i, 1);
  }
  const expected = targets.length * (knobs.warmup + knobs.rounds * (knobs.duration + 1));
  log(`pinning: ${pinning ? `keygate on CPU ${knobs.keygateCpus}, upstream + load generator on CPU ${knobs.loadgenCpus}` : 'off'}; loadgen ${knobs.loadgen}; ${knobs.connections} connections; ${knobs.rounds} rounds x ${knobs.duration}s per target (+${knobs.warmup}s warm-up); ~${expected}s`);
  // Bound the whole measurement in time, whatever a child does.
  const deadline = setTimeout(() => {
    log('bench: overall time limit reached, stopping');
    process.kill(process.pid, 'SIGTERM');
  }, (expected * 2 + 120) * 1000);
  deadline.unref();

  if (knobs.warmup > 0) {
    for (const t of targets) {
      const w = await loadRun(t, knobs.warmup);
      log(`warm-up ${pad(t.name, 6, true)} ${fmt(w.rps)} req/s`);
    }
  }

  const runs = [];
  for (let round = 1; round <= knobs.rounds; round++) {
    for (let k = 0; k < targets.length; k++) {
      // Rotate the start so no target always runs right after the same one.
      const t = targets[(k + round - 1) % targets.length];
      const kg0 = treeCpuSeconds(kg.pid);
      const sup0 = cpuSeconds(kg.pid);
      const up0 = cpuSeconds(upstream.pid);
      const res = await loadRun(t, knobs.duration);
      const kg1 = treeCpuSeconds(kg.pid);
      const sup1 = cpuSeconds(kg.pid);
      const up1 = cpuSeconds(upstream.pid);
      const row = {
        round,
        target: t.name,
        loadgen: t.loadgen,
        requests: res.requests,
        durationS: res.durationS,
        rps: res.rps,
        p50Ms: res.p50Ms,
        p90Ms: res.p90Ms,
        p99Ms: res.p99Ms,
        maxMs: res.maxMs,
        errors: (res.errors ?? 0) + (res.timeouts ?? 0),
        non2xx: res.non2xx ?? 0,
        keygateCpuUsPerReq: t.proxied && res.requests ? ((kg1 - kg0) * 1e6) / res.requests : null,
        keygateUtilPct: t.proxied ? ((kg1 - kg0) / res.durationS) * 100 : null,
        // With workers: the supervisor's part (connection hand-off, audit relay, lease grants).
        supervisorCpuUsPerReq: t.proxied && knobs.workers > 1 && res.requests ? ((sup1 - sup0) * 1e6) / res.requests : null,
        upstreamCpuUsPerReq: res.requests ? ((up1 - up0) * 1e6) / res.requests : null,
        statuses: res.statuses,
      };
      runs.push(row);
      log(
        `round ${round} ${pad(t.name, 6, true)} ${pad(fmt(row.rps), 7)} req/s  p50 ${fmt(row.p50Ms, 2)} ms  p99 ${fmt(row.p99Ms, 2)} ms  err ${row.errors} non2xx ${row.non2xx}` +
          (t.proxied ? `  keygate ${fmt(row.keygateCpuUsPerReq, 1)} µs/req (util ${fmt(row.keygateUtilPct)}%)` : ''),
      );
      if (row.errors + row.non2xx > 0) log(`  WARNING: ${t.name} had errors or non-2xx answers (${JSON.stringify(row.statuses ?? {})}); its figures are not comparable`);
    }
  }
  clearTimeout(deadline);

  // ---- cross-checks: metrics and audit saw what the load generator sent ----------------------
  const metricsText = (await request(`http://127.0.0.1:${adminPort}/metrics`)).body ?? '';
  const allowed = metricSum(metricsText, 'keygate_requests_total', 'outcome="allowed"');
  const sentToKeygate = runs.filter((x) => x.target !== 'direct').reduce((a, x) => a + x.requests, 0);
  // Stop keygate first: a drain flushes the audit log, so the line count below is complete.
  const kgCpuTotal = treeCpuSeconds(kg.pid);
  const kgMem = treeMemoryMiB(kg.pid);
  await stop(kg, 8000);
  await new Promise((res) => kgLog.end(res));
  const audit = await countAuditLines(auditFile);
  const external = await runExternal();

  // ---- summary -------------------------------------------------------------------------------
  const summary = targets.map((t) => {
    const rs = runs.filter((x) => x.target === t.name);
    return {
      target: t.name,
      label: t.label,
      loadgen: t.loadgen,
      rps: median(rs.map((x) => x.rps)),
      bestRps: Math.max(...rs.map((x) => x.rps)),
      rpsSpread: spread(rs.map((x) => x.rps)),
      p50Ms: median(rs.map((x) => x.p50Ms)),
      p99Ms: median(rs.map((x) => x.p99Ms)),
      errors: rs.reduce((a, x) => a + x.errors, 0),
      non2xx: rs.reduce((a, x) => a + x.non2xx, 0),
      keygateCpuUsPerReq: t.proxied ? median(rs.map((x) => x.keygateCpuUsPerReq)) : null,
      keygateCpuSpread: t.proxied ? spread(rs.map((x) => x.keygateCpuUsPerReq)) : null,
      keygateUtilPct: t.proxied ? median(rs.map((x) => x.keygateUtilPct)) : null,
      supervisorCpuUsPerReq: t.proxied && knobs.workers > 1 ? median(rs.map((x) => x.supervisorCpuUsPerReq)) : null,
      upstreamCpuUsPerReq: median(rs.map((x) => x.upstreamCpuUsPerReq)),
    };
  });
  const direct = summary.find((s) => s.target === 'direct');
  for (const s of summary) {
    s.rpsRatio = s.rps / direct.rps;
    s.p50Ratio = s.p50Ms / direct.p50Ms;
    // Per-round ratio to the direct run of the same round: how stable the comparison is.
    const per = [];
    for (let round = 1; round <= knobs.rounds; round++) {
      const a = runs.find((x) => x.round === round && x.target === s.target);
      const d = runs.find((x) => x.round === round && x.target === 'direct');
      if (a && d) per.push(a.rps / d.rps);
    }
    s.ratioSpread = spread(per);
  }

  const loadAfter = loadavg();
  const lines = [];
  lines.push('');
  lines.push(`keygate bench: workers ${knobs.workers}, ${knobs.rounds} rounds x ${knobs.duration}s, ${knobs.connections} connections, ${pinning ? `keygate pinned to CPU ${knobs.keygateCpus}, upstream+loadgen to CPU ${knobs.loadgenCpus}` : 'unpinned'}`);
  lines.push(`host: ${cpus().length} CPUs (${cpus()[0]?.model?.trim() ?? '?'}), node ${process.version}, load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
  lines.push('');
  lines.push(`${pad('target', 27, true)} ${pad('loadgen', 10, true)} ${pad('req/s', 8)} ${pad('spread', 6)} ${pad('p50 ms', 7)} ${pad('p99 ms', 7)} ${pad('err/non2xx', 10)} ${pad('x direct', 8)} ${pad('kg CPU µs/req', 13)} ${pad('kg util', 7)}`);
  for (const s of summary) {
    lines.push(
      `${pad(s.label, 27, true)} ${pad(s.loadgen, 10, true)} ${pad(fmt(s.rps), 8)} ${pad(fmt(s.rpsSpread * 100) + '%', 6)} ${pad(fmt(s.p50Ms, 2), 7)} ${pad(fmt(s.p99Ms, 2), 7)} ${pad(`${s.errors}/${s.non2xx}`, 10)} ${pad(s.target === 'direct' ? '1.00' : fmt(s.rpsRatio, 2), 8)} ${pad(s.keygateCpuUsPerReq === null ? '-' : fmt(s.keygateCpuUsPerReq, 1), 13)} ${pad(s.keygateUtilPct === null ? '-' : fmt(s.keygateUtilPct) + '%', 7)}`,
    );
  }
  lines.push('');
  lines.push('req/s, p50, p99, kg CPU: medians over rounds; spread = (max-min)/median of req/s; x direct = req/s ratio to the direct upstream.');
  lines.push('kg CPU µs/req = keygate utime+stime (/proc) / requests: compare this across machines and runs; req/s only within one run.');
  if (summary.some((s) => s.loadgen !== summary[0].loadgen)) lines.push('note: rows are driven by different load generators (wrk cannot present a client certificate; the h2 and grpc rows use Node clients of their own), so compare CPU µs/req across them, not req/s.');
  for (const s of summary) if (s.supervisorCpuUsPerReq !== null) lines.push(`${s.target}: of the ${fmt(s.keygateCpuUsPerReq, 1)} kg CPU µs/req, the supervisor spent ${fmt(s.supervisorCpuUsPerReq, 1)} (connection hand-off, audit relay, lease grants); the rest is the ${knobs.workers} workers`);
  lines.push(`keygate memory (supervisor and workers together): peak RSS ${fmt(kgMem.peak)} MiB, ${fmt(kgMem.current)} MiB at the end; ${fmt(kgCpuTotal, 1)} s of CPU in all`);
  lines.push(`cross-check: keygate counted ${allowed} allowed requests in keygate_requests_total (load runs sent ${sentToKeygate} + warm-ups + checks); audit log ${audit.requests} request lines, ${fmt(audit.bytes / Math.max(1, audit.requests))} bytes/line`);
  if (audit.invalid) lines.push(`WARNING: ${audit.invalid} of ${audit.parsed} audit lines checked are not JSON, e.g. ${audit.example}`);
  for (const [name, r] of Object.entries(external)) lines.push(`${EXTERNAL.find((x) => x.name === name).label}: ${r.error ? `FAILED: ${r.error}` : EXTERNAL.find((x) => x.name === name).summary(r.result)}`);
  const bad = summary.filter((s) => s.errors + s.non2xx > 0);
  if (bad.length) lines.push(`WARNING: errors or non-2xx in ${bad.map((s) => s.target).join(', ')}: those figures are not comparable.`);
  const lowUtil = summary.filter((s) => s.keygateUtilPct !== null && s.keygateUtilPct < 85);
  if (lowUtil.length && pinning) lines.push(`note: keygate was below 85% of its CPU for ${lowUtil.map((s) => s.target).join(', ')}: something else (load generator, host noise) was the bottleneck.`);
  process.stdout.write(lines.join('\n') + '\n');

  const results = {
    startedAt: startedAt.toISOString(),
    host: { cpus: cpus().length, model: cpus()[0]?.model?.trim(), node: process.version, loadavgBefore: loadBefore, loadavgAfter: loadAfter },
    knobs: { ...knobs, pinning },
    checks,
    summary,
    runs,
    external,
    crossCheck: { metricsAllowed: allowed, measuredRequestsToKeygate: sentToKeygate, auditRequestLines: audit.requests, auditBytes: audit.bytes, auditLinesChecked: audit.parsed, auditLinesInvalid: audit.invalid, keygateCpuSecondsTotal: kgCpuTotal, keygatePeakRssMiB: kgMem.peak, keygateRssMiB: kgMem.current },
  };
  const outDir = join(HERE, 'results');
  await mkdir(outDir, { recursive: true });
  const outFile = join(outDir, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(outFile, JSON.stringify(results, null, 2) + '\n');
  log(`results: ${outFile}`);
  if (knobs.cpuProf) {
    // Written by keygate when it exits; kept next to the results (the temp folder goes away).
    const profs = existsSync(join(tmp, 'profile')) ? await readdir(join(tmp, 'profile')) : [];
    for (const p of profs) await copyFile(join(tmp, 'profile', p), join(outDir, `keygate-${startedAt.toISOString().replace(/[:.]/g, '-')}-${p}`));
    log(`cpu profile: ${profs.length ? `${profs.length} file(s) copied to ${outDir}` : 'none written'}`);
  }
}

main().then(
  () => cleanup(),
  async (err) => {
    if (!aborting) process.stderr.write(`bench: ${err?.message ?? err}\n`);
    await cleanup();
    process.exitCode = 1;
  },
);

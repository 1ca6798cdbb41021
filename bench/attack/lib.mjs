// What the attack benchmarks share: a keygate child (the built binary) in front of the bench
// upstream, in a temporary folder, with the PKI and credentials made by keygate's own code
// and CLI (bench/lib/setup.mjs); a legitimate client that measures its own latency; and
// readings of keygate's RSS and descriptor count from /proc. Everything binds 127.0.0.1 on
// ports the kernel picks; every child is stopped on exit, on error and on Ctrl-C.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAllNow, memoryMiB, start, stopAll, waitForLine } from '../lib/proc.mjs';
import { BENCH_PATH, createCredentials, mintPki } from '../lib/setup.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(HERE, '..', '..');
export const DIST = join(ROOT, 'dist');
const CLI = join(DIST, 'cli', 'keygate.js');
export { BENCH_PATH };

/** One line, no stack trace, exit 2: a wrong knob or a missing prerequisite. */
export function fail(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

export function intKnob(name, dflt, min, max) {
  const raw = process.env[name];
  const v = raw === undefined || raw === '' ? dflt : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) fail(`${name} must be an integer from ${min} to ${max}`);
  return v;
}

/** Prints the comment block at the top of `file` for --help. */
export function helpFrom(file) {
  if (!process.argv.includes('--help') && !process.argv.includes('-h')) return;
  const lines = readFileSync(fileURLToPath(file), 'utf8').split('\n');
  process.stdout.write(lines.slice(0, lines.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
  process.exit(0);
}

let cleanupDir;
const onSignal = () => {
  killAllNow();
  process.exit(130);
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
process.once('exit', killAllNow);

/**
 * Starts the upstream and keygate with `extra` YAML appended to the config (limits, policies).
 * Returns the pids, ports, a valid token and the CA to trust.
 */
export async function startWorld({ extraYaml = '', listenLimits = '' } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'keygate-bench-attack-'));
  cleanupDir = dir;
  const pki = await mintPki(DIST, join(dir, 'pki'));
  const upstream = start(process.execPath, [join(ROOT, 'bench', 'lib', 'upstream.mjs')]);
  const { port: upstreamPort } = await waitForLine(upstream, 'stdout', (l) => (l.startsWith('{') ? JSON.parse(l) : undefined), 10_000, 'upstream');
  const configFile = join(dir, 'keygate.yaml');
  await writeFile(
    configFile,
    `# Written by bench/attack for one run.
listen:
  host: 127.0.0.1
  port: 0
  tls: { cert: pki/server.crt, key: pki/server.key }
${listenLimits ? `  limits: ${listenLimits}\n` : ''}admin: { host: 127.0.0.1, port: 0 }
routes:
  - { pathPrefix: /healthz, upstream: "http://127.0.0.1:${upstreamPort}", public: true }
  - { pathPrefix: /, upstream: "http://127.0.0.1:${upstreamPort}", timeout: 30s }
scopes:
  items:read: [GET /api/v1/items, GET /api/v1/items/**]
roles:
  reader: [items:read]
store: { file: credentials.yaml }
audit: { output: "${process.env.AUDIT_OUTPUT ?? 'audit.log'}" }
shutdown: { drainTimeout: 2s }
${extraYaml}`,
  );
  const { token } = await createCredentials(CLI, configFile, join(dir, 'credentials.yaml'));
  const keygate = start(process.execPath, [CLI, 'serve', '-c', configFile]);
  const listening = await waitForLine(keygate, 'stderr', (l) => (l.includes('keygate listening') ? JSON.parse(l) : undefined), 15_000, 'keygate');
  keygate.stderr.resume();
  keygate.stdout.resume();
  const portOf = (a) => Number(a.slice(a.lastIndexOf(':') + 1));
  const ca = readFileSync(pki.caCert ?? join(dir, 'pki', 'ca.crt'), 'utf8');
  return { dir, keygate, pid: keygate.pid, port: portOf(listening.https), adminPort: portOf(listening.admin), upstreamPort, token, ca };
}

export async function stopWorld() {
  await stopAll(3_000);
  if (cleanupDir && !process.env.KEEP) await rm(cleanupDir, { recursive: true, force: true });
}

/** keygate's /metrics text from the admin listener (bounded: 10 s). */
export function adminMetrics(world) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: world.adminPort, path: '/metrics', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('/metrics did not answer within 10 s')));
    req.on('error', reject);
  });
}

export const rssMiB = (pid) => memoryMiB(pid).current;
export function fdCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/**
 * keygate's TCP sockets by side, from /proc/<pid>/fd and /proc/net/tcp{,6}: `clients` (local
 * port = keygate's listener; the listening socket itself left out), of which `closeWait` are
 * in CLOSE-WAIT (the client left, keygate did not close), and `upstream` (the pool to the
 * upstream). Separates a leak towards clients from a warm upstream pool, which the raw
 * descriptor count cannot.
 */
export function socketsOf(world) {
  const inodes = new Set();
  try {
    for (const fd of readdirSync(`/proc/${world.pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${world.pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return { clients: NaN, closeWait: NaN, upstream: NaN };
  }
  let clients = 0;
  let closeWait = 0;
  let upstream = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      const local = parseInt(f[1].split(':')[1], 16);
      const remote = parseInt(f[2].split(':')[1], 16);
      if (local === world.port && f[3] !== '0A') {
        clients++;
        if (f[3] === '08') closeWait++;
      } else if (remote === world.upstreamPort) upstream++;
    }
  }
  return { clients, closeWait, upstream };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * A legitimate client: `concurrency` loops of GET BENCH_PATH with the valid token over
 * keep-alive, each request bounded by `timeoutMs`, until `stop()` says so. Returns the
 * latencies (ms) of the successes and the count of failures (non-200, error, timeout).
 * It connects from 127.0.0.1 like the attackers, unless LEGIT_ADDRESS names another loopback
 * source address (127.0.0.2): per-IP defences cannot tell two clients of one address apart.
 */
export function legitimateClient(world, { concurrency = 2, timeoutMs = 5_000, servername = 'localhost', localAddress = process.env.LEGIT_ADDRESS || undefined } = {}) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: concurrency, ca: world.ca, servername, localAddress });
  const latencies = [];
  let failures = 0;
  let running = true;
  const one = () =>
    new Promise((resolve) => {
      const started = performance.now();
      const req = https.get({ host: '127.0.0.1', port: world.port, path: BENCH_PATH, agent, servername, headers: { host: 'localhost', 'x-api-key': world.token }, timeout: timeoutMs }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) latencies.push(performance.now() - started);
          else failures++;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        failures++;
        resolve();
      });
    });
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) await one();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      const sorted = [...latencies].sort((a, b) => a - b);
      const total = latencies.length + failures;
      return { ok: latencies.length, failures, total, successRate: total ? latencies.length / total : NaN, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A bound for Promise.race that does not keep the process alive once the race is decided. */
export const bound = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** A compact fixed-width table. */
export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ')).join('\n') + '\n';
}

export const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

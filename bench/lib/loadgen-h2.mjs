// An HTTP/2 load generator in one process (so it can be pinned apart from keygate): SESSIONS
// TLS connections, each keeping STREAMS requests in flight (closed loop: a new request as soon
// as one finishes), for DURATION seconds. Input: JSON in BENCH_SPEC — the environment, so the
// token stays off the command line; output: one line `RESULT {json}` on stdout, the same shape
// as loadgen-autocannon.mjs. node:http2 rather than h2load, which is not installed here.
// Exits when its parent goes away (stdin closes).
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';

const spec = JSON.parse(process.env.BENCH_SPEC ?? '{}');
const url = new URL(spec.url);
const sessions = spec.sessions ?? 4;
const streams = Math.max(1, Math.round((spec.concurrency ?? 64) / sessions));
const ca = spec.ca ? readFileSync(spec.ca) : undefined;
const headers = { ':method': 'GET', ':path': url.pathname + url.search, ':authority': url.host, ...(spec.headers ?? {}) };

let times = new Float64Array(Math.max(1024, spec.duration * 60_000));
let n = 0;
let errors = 0;
let non2xx = 0;
const statuses = {};
let running = true;

function record(ms, status) {
  if (n === times.length) {
    const bigger = new Float64Array(times.length * 2);
    bigger.set(times);
    times = bigger;
  }
  times[n++] = ms;
  statuses[status] = (statuses[status] ?? 0) + 1;
  if (status < 200 || status > 299) non2xx++;
}

function loop(session) {
  if (!running || session.closed || session.destroyed) return;
  const t0 = performance.now();
  const req = session.request(headers);
  let status = 0;
  req.on('response', (h) => (status = h[':status']));
  req.on('data', () => undefined);
  req.on('end', () => {
    record(performance.now() - t0, status);
    loop(session);
  });
  req.on('error', () => {
    errors++;
    setTimeout(() => loop(session), 10);
  });
}

const started = performance.now();
const open = [];
for (let i = 0; i < sessions; i++) {
  const s = http2.connect(url.origin, { ca, servername: spec.servername ?? url.hostname, rejectUnauthorized: Boolean(ca) });
  s.on('error', () => errors++);
  s.once('connect', () => {
    for (let k = 0; k < streams; k++) loop(s);
  });
  open.push(s);
}

setTimeout(() => {
  running = false;
  const durationS = (performance.now() - started) / 1000;
  for (const s of open) s.destroy();
  const sorted = times.subarray(0, n).sort();
  const pct = (p) => (n ? sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)] : null);
  const r = { loadgen: 'h2', requests: n, durationS, rps: n / durationS, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), maxMs: n ? sorted[n - 1] : null, errors, timeouts: 0, non2xx, statuses };
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  process.exit(0);
}, spec.duration * 1000);

process.stdin.on('end', () => process.exit(2));
process.stdin.on('error', () => process.exit(2));
process.stdin.resume();

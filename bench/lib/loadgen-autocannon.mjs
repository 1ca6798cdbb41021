// One autocannon run in its own process (so it can be pinned to a CPU apart from keygate and
// its CPU time kept out of keygate's). Input: JSON in BENCH_SPEC — the environment, so the
// token is not on a command line that `ps` shows; output: one line `RESULT {json}` on stdout.
// Latencies are taken from autocannon's per-response times (high-resolution, in ms) rather
// than its histogram, which has 1 ms resolution.
// Exits when its parent goes away (stdin closes).
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const spec = JSON.parse(process.env.BENCH_SPEC ?? '{}');
const opts = {
  url: spec.url,
  duration: spec.duration,
  connections: spec.connections,
  pipelining: 1,
  timeout: 5,
  headers: spec.headers ?? {},
};
if (spec.tls) {
  // autocannon itself never verifies the server (the checks in run.mjs do); the client
  // certificate is what matters here.
  opts.tlsOptions = {};
  if (spec.tls.cert) opts.tlsOptions.cert = readFileSync(spec.tls.cert);
  if (spec.tls.key) opts.tlsOptions.key = readFileSync(spec.tls.key);
}

// Enough room for ~60k req/s for the whole run; grows if ever needed.
let times = new Float64Array(Math.max(1024, spec.duration * 60_000));
let n = 0;
const statuses = {};
const instance = autocannon(opts, (err, result) => {
  if (err) {
    process.stdout.write(`RESULT ${JSON.stringify({ error: String(err?.message ?? err) })}\n`);
    process.exit(1);
  }
  const sorted = times.subarray(0, n).sort();
  const pct = (p) => (n ? sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)] : null);
  const r = {
    loadgen: 'autocannon',
    requests: n,
    durationS: result.duration,
    rps: n / result.duration,
    p50Ms: pct(50),
    p90Ms: pct(90),
    p99Ms: pct(99),
    maxMs: n ? sorted[n - 1] : null,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statuses,
  };
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  process.exit(0);
});
instance.on('response', (_client, statusCode, _bytes, responseTime) => {
  if (n === times.length) {
    const bigger = new Float64Array(times.length * 2);
    bigger.set(times);
    times = bigger;
  }
  times[n++] = responseTime;
  statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
});

process.stdin.on('end', () => process.exit(2));
process.stdin.on('error', () => process.exit(2));
process.stdin.resume();

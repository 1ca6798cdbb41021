// A gRPC unary load generator (@grpc/grpc-js, the reference Node client): CHANNELS channels —
// each its own HTTP/2 connection — with CONCURRENCY calls in flight in all (closed loop), for
// DURATION seconds, against bench.Echo/Unary with a ~100-byte message. Input: JSON in
// BENCH_SPEC (the token travels there, as metadata, never on a command line); output: one
// `RESULT {json}` line, the same shape as the other load generators. A call that ends in any
// status but OK counts as non-2xx.
// Exits when its parent goes away (stdin closes).
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

const spec = JSON.parse(process.env.BENCH_SPEC ?? '{}');
const identity = (b) => b;
const MESSAGE = Buffer.from(JSON.stringify({ ok: true, service: 'bench-client', message: 'hello through keygate', items: [1, 2, 3], pad: 'xxxxxxxxxx' }));
const channels = spec.channels ?? 4;
const perChannel = Math.max(1, Math.round((spec.concurrency ?? 64) / channels));
const creds = spec.ca ? grpc.credentials.createSsl(readFileSync(spec.ca)) : grpc.credentials.createInsecure();
const md = new grpc.Metadata();
for (const [k, v] of Object.entries(spec.metadata ?? {})) md.set(k, v);

let times = new Float64Array(Math.max(1024, spec.duration * 40_000));
let n = 0;
let errors = 0;
let non2xx = 0;
const statuses = {};
let running = true;

const clients = Array.from({ length: channels }, () => new grpc.Client(spec.target, creds, {
  'grpc.ssl_target_name_override': spec.servername ?? 'localhost',
  // A connection per channel, as separate client processes would have.
  'grpc.use_local_subchannel_pool': 1,
}));

function loop(client) {
  if (!running) return;
  const t0 = performance.now();
  client.makeUnaryRequest(spec.path ?? '/bench.Echo/Unary', identity, identity, MESSAGE, md, {}, (err) => {
    const code = err ? err.code : 0;
    if (n === times.length) {
      const bigger = new Float64Array(times.length * 2);
      bigger.set(times);
      times = bigger;
    }
    times[n++] = performance.now() - t0;
    statuses[code] = (statuses[code] ?? 0) + 1;
    if (code !== 0) non2xx++;
    if (err && code === grpc.status.UNAVAILABLE) errors++;
    loop(client);
  });
}

const started = performance.now();
for (const c of clients) for (let k = 0; k < perChannel; k++) loop(c);

setTimeout(() => {
  running = false;
  const durationS = (performance.now() - started) / 1000;
  for (const c of clients) c.close();
  const sorted = times.subarray(0, n).sort();
  const pct = (p) => (n ? sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)] : null);
  const r = { loadgen: 'grpc-js', requests: n, durationS, rps: n / durationS, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), maxMs: n ? sorted[n - 1] : null, errors, timeouts: 0, non2xx, statuses };
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  process.exit(0);
}, spec.duration * 1000);

process.stdin.on('end', () => process.exit(2));
process.stdin.on('error', () => process.exit(2));
process.stdin.resume();

// node bench/attack/token-spray.mjs — issue 8, "resource limits under attack" (a):
// a spray of random well-formed tokens (valid checksum, never issued) and of malformed ones
// from many keep-alive connections, while a legitimate client keeps calling with its valid
// token. Reports keygate's RSS over the run, the share of the spray that the per-IP failure
// limit answers with 429, and the legitimate client's success rate and p99 against its p99
// before the spray. Not a test: it prints figures.
//
// Knobs (environment): TOKENS=1000000 (spray requests), MALFORMED=10 (% of them malformed),
// CONNECTIONS=64, PIPELINE=16 (requests in flight per connection), MAX_SECONDS=120 (the spray
// stops there even if TOKENS were not all sent), IDLE_SECONDS=5 (the legitimate client alone,
// before), LEGIT_CONCURRENCY=2, KEEP=1 (keep the temp folder), AUDIT_OUTPUT=audit.log (e.g.
// /dev/null, to tell audit buffering apart from other growth), LEGIT_ADDRESS (a loopback source
// address for the legitimate client, e.g. 127.0.0.2; default: the attackers' 127.0.0.1).
// Starts its own upstream and keygate on 127.0.0.1, ports picked by the kernel, and stops them.
import tls from 'node:tls';
import { availableParallelism, loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BENCH_PATH, DIST, adminMetrics, bound, fmt, fdCount, socketsOf, helpFrom, intKnob, legitimateClient, rssMiB, sleep, startWorld, stopWorld, table } from './lib.mjs';
import { cpuSeconds } from '../lib/proc.mjs';

helpFrom(import.meta.url);

const knobs = {
  tokens: intKnob('TOKENS', 1_000_000, 1, 100_000_000),
  malformed: intKnob('MALFORMED', 10, 0, 100),
  connections: intKnob('CONNECTIONS', 64, 1, 2_000),
  pipeline: intKnob('PIPELINE', 16, 1, 256),
  maxSeconds: intKnob('MAX_SECONDS', 120, 1, 170),
  idleSeconds: intKnob('IDLE_SECONDS', 5, 1, 60),
  legitConcurrency: intKnob('LEGIT_CONCURRENCY', 2, 1, 64),
};

const { mintToken } = await import(join(DIST, 'store', 'token-format.js'));
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Malformed in the ways a scanner or a typo would be: truncated, bad checksum, junk. */
function malformedToken(i) {
  const good = mintToken(null);
  switch (i % 3) {
    case 0:
      return good.slice(0, good.length - 1 - (i % 7));
    case 1: {
      const last = good[good.length - 1];
      return good.slice(0, -1) + (last === 'a' ? 'b' : 'a');
    }
    default:
      return 'kg_' + [...randomBytes(36)].map((b) => B62[b % 62]).join('');
  }
}

function requestFor(i) {
  const token = knobs.malformed > 0 && i % 100 < knobs.malformed ? malformedToken(i) : mintToken(null);
  return `GET ${BENCH_PATH} HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${token}\r\n\r\n`;
}

const world = await startWorld();
const out = (s) => process.stdout.write(s);
try {
  out(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${availableParallelism()} CPUs\n`);
  out(`token spray: keygate pid ${world.pid}, ${knobs.connections} connections x ${knobs.pipeline} in flight, up to ${knobs.tokens} requests or ${knobs.maxSeconds} s\n`);

  // 1. The legitimate client alone, after a warm-up (JIT, pools, TLS session state).
  const warm = legitimateClient(world, { concurrency: knobs.legitConcurrency });
  await sleep(2_000);
  await warm.stop();
  const idle = legitimateClient(world, { concurrency: knobs.legitConcurrency });
  await sleep(knobs.idleSeconds * 1000);
  const idleResult = await idle.stop();
  const rssBefore = rssMiB(world.pid);
  const fdBefore = fdCount(world.pid);
  const cpuBefore = cpuSeconds(world.pid);

  // 2. The spray, with the legitimate client running alongside.
  const status = new Map();
  let sent = 0;
  let answered = 0;
  let reconnects = 0;
  let stopping = false;
  const deadline = performance.now() + knobs.maxSeconds * 1000;
  const rss = [];
  const sampler = setInterval(() => rss.push(rssMiB(world.pid)), 1_000);

  const sprayConnection = () =>
    new Promise((resolve) => {
      let inflight = 0;
      let tail = '';
      const socket = tls.connect({ host: '127.0.0.1', port: world.port, servername: 'localhost', ca: world.ca });
      const pump = () => {
        if (stopping) return;
        let batch = '';
        while (inflight < knobs.pipeline && sent < knobs.tokens && performance.now() < deadline) {
          batch += requestFor(sent++);
          inflight++;
        }
        if (batch) socket.write(batch);
        if (inflight === 0) socket.end();
      };
      socket.on('secureConnect', pump);
      socket.setEncoding('latin1');
      socket.on('data', (chunk) => {
        const text = tail + chunk;
        const re = /HTTP\/1\.1 (\d{3}) /g;
        let m;
        let last = 0;
        while ((m = re.exec(text))) {
          status.set(m[1], (status.get(m[1]) ?? 0) + 1);
          inflight--;
          answered++;
          last = re.lastIndex;
        }
        tail = text.slice(Math.max(last, text.length - 16));
        if (inflight <= knobs.pipeline / 2) pump();
      });
      const done = () => resolve(inflight);
      socket.on('close', done);
      socket.on('error', () => undefined);
    });

  const legit = legitimateClient(world, { concurrency: knobs.legitConcurrency });
  const started = performance.now();
  const loops = Array.from({ length: knobs.connections }, async () => {
    // A connection keygate closes is reopened: the attacker does not give up.
    while (!stopping && sent < knobs.tokens && performance.now() < deadline) {
      await sprayConnection();
      if (!stopping && sent < knobs.tokens && performance.now() < deadline) reconnects++;
    }
  });
  const progress = setInterval(() => out(`  ${Math.round((performance.now() - started) / 1000)} s: ${sent} sent, ${answered} answered, RSS ${fmt(rssMiB(world.pid))} MiB\n`), 10_000);
  await Promise.race([Promise.all(loops), bound(knobs.maxSeconds * 1000 + 10_000)]);
  stopping = true;
  clearInterval(progress);
  const seconds = (performance.now() - started) / 1000;
  const legitResult = await legit.stop();
  clearInterval(sampler);
  const cpu = cpuSeconds(world.pid) - cpuBefore;
  const rssAfter = rssMiB(world.pid);
  const fdAfter = fdCount(world.pid);
  const socketsAfter = socketsOf(world);

  const metrics = await adminMetrics(world);
  const metric = (re) => [...metrics.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);
  const authFailures = metric(/^keygate_auth_failures_total\{[^}]*\} (\S+)$/gm);
  const perIpLimited = metric(/^keygate_rate_limited_total\{account=""\} (\S+)$/gm);

  const share = (code) => (answered ? (100 * (status.get(code) ?? 0)) / answered : NaN);
  const others = [...status].filter(([c]) => c !== '401' && c !== '429').map(([c, n]) => `${c}:${n}`).join(' ') || '-';
  out('\n' + table([
    ['spray', 'value'],
    ['requests sent / answered', `${sent} / ${answered} in ${fmt(seconds)} s (${fmt(answered / seconds, 0)} req/s), ${reconnects} reconnects`],
    ['answers 401 / 429 / other', `${fmt(share('401'))} % / ${fmt(share('429'))} % / ${others}`],
    ['per-IP failure limit engaged', `${(status.get('429') ?? 0) > 0 ? 'yes' : 'no'} (keygate_rate_limited_total{account=""} ${perIpLimited}, auth failures counted ${authFailures})`],
    ['keygate CPU', `${fmt(cpu)} s (${fmt((cpu * 1e6) / Math.max(answered, 1), 0)} µs per spray request)`],
    ['keygate RSS MiB before / min / max / after', `${fmt(rssBefore)} / ${fmt(Math.min(...rss))} / ${fmt(Math.max(...rss))} / ${fmt(rssAfter)}`],
    ['keygate fds before / after', `${fdBefore} / ${fdAfter} (client sockets ${socketsAfter.clients}, ${socketsAfter.closeWait} in CLOSE-WAIT; upstream pool ${socketsAfter.upstream})`],
  ]));
  out('\n' + table([
    ['legitimate client', 'requests', 'success %', 'p50 ms', 'p99 ms', 'p99 / idle p99'],
    ['idle (before)', idleResult.total, fmt(100 * idleResult.successRate, 3), fmt(idleResult.p50, 2), fmt(idleResult.p99, 2), '1.0'],
    ['during the spray', legitResult.total, fmt(100 * legitResult.successRate, 3), fmt(legitResult.p50, 2), fmt(legitResult.p99, 2), fmt(legitResult.p99 / idleResult.p99, 1)],
  ]));
  out(`\ntargets (issue 8): RSS flat, 429 engages, legitimate success >= 99.9 %, p99 < 3x idle p99\n`);
} finally {
  await stopWorld();
}

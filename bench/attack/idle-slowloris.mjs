// node bench/attack/idle-slowloris.mjs — issue 8, "resource limits under attack" (b):
// 2,000 idle keep-alive connections and 500 slowloris connections against one keygate, while
// normal clients keep calling. Reports the normal clients' success rate and latency against a
// baseline without the attack, keygate's descriptor count and RSS before, during and after,
// and what keygate did to the attackers (connections it closed, 408s it answered).
//
// "Idle" connections completed TLS and one request, and send one more request every
// IDLE_PING_MS (4 s, under the default 5 s keepAliveTimeout) so they stay open: the quiet
// connection pools of many clients. Slowloris connections send a request head one header
// line every SLOW_LINE_MS and never finish it; when keygate cuts one off (headersTimeout,
// default 10 s) the attacker opens another at once.
//
// Knobs (environment): IDLE=2000, SLOW=500, IDLE_PING_MS=4000, SLOW_LINE_MS=2000,
// BASELINE_SECONDS=5, MEASURE_SECONDS=30, NORMAL_CONCURRENCY=4, KEEP=1 (keep the temp folder).
// Starts its own upstream and keygate on 127.0.0.1, ports picked by the kernel, and stops them.
import tls from 'node:tls';
import { availableParallelism, loadavg } from 'node:os';
import { BENCH_PATH, bound, fmt, fdCount, socketsOf, helpFrom, intKnob, legitimateClient, rssMiB, sleep, startWorld, stopWorld, table } from './lib.mjs';

helpFrom(import.meta.url);

const knobs = {
  idle: intKnob('IDLE', 2_000, 0, 10_000),
  slow: intKnob('SLOW', 500, 0, 5_000),
  idlePingMs: intKnob('IDLE_PING_MS', 4_000, 100, 60_000),
  slowLineMs: intKnob('SLOW_LINE_MS', 2_000, 100, 60_000),
  baselineSeconds: intKnob('BASELINE_SECONDS', 5, 1, 60),
  measureSeconds: intKnob('MEASURE_SECONDS', 30, 5, 120),
  normalConcurrency: intKnob('NORMAL_CONCURRENCY', 4, 1, 64),
};

const world = await startWorld();
const out = (s) => process.stdout.write(s);
const sockets = new Set();
let stopping = false;
const stats = { idleOpened: 0, idleClosedByKeygate: 0, idleFailed: 0, slowOpened: 0, slowClosedByKeygate: 0, slow408: 0, slowFailed: 0 };

function connect() {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: world.port, servername: 'localhost', ca: world.ca });
    s.once('secureConnect', () => resolve(s));
    s.once('error', () => resolve(null));
  });
}

const GET = `GET ${BENCH_PATH} HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${world.token}\r\n\r\n`;

async function idleConnection() {
  const s = await connect();
  if (!s) return void stats.idleFailed++;
  stats.idleOpened++;
  sockets.add(s);
  s.on('data', () => undefined);
  s.write(GET);
  const timer = setInterval(() => s.write(GET), knobs.idlePingMs);
  s.on('error', () => undefined);
  s.once('close', () => {
    clearInterval(timer);
    sockets.delete(s);
    if (!stopping) stats.idleClosedByKeygate++;
  });
}

async function slowConnection() {
  while (!stopping) {
    const s = await connect();
    if (!s) {
      stats.slowFailed++;
      await sleep(100);
      continue;
    }
    stats.slowOpened++;
    sockets.add(s);
    s.setEncoding('latin1');
    s.on('data', (d) => {
      if (d.startsWith('HTTP/1.1 408')) stats.slow408++;
    });
    s.on('error', () => undefined);
    s.write(`GET ${BENCH_PATH} HTTP/1.1\r\nHost: localhost\r\n`);
    let n = 0;
    const timer = setInterval(() => s.write(`x-slow-${n++}: ${'a'.repeat(8)}\r\n`), knobs.slowLineMs);
    await new Promise((resolve) =>
      s.once('close', () => {
        clearInterval(timer);
        sockets.delete(s);
        if (!stopping) stats.slowClosedByKeygate++;
        resolve();
      }),
    );
  }
}

try {
  out(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${availableParallelism()} CPUs\n`);
  out(`idle + slowloris: keygate pid ${world.pid}; ${knobs.idle} idle keep-alive, ${knobs.slow} slowloris, ${knobs.measureSeconds} s under attack\n`);
  const fdBefore = fdCount(world.pid);
  const rssBefore = rssMiB(world.pid);

  // Warm-up (JIT, pools, TLS session state), then the baseline.
  const warm = legitimateClient(world, { concurrency: knobs.normalConcurrency });
  await sleep(2_000);
  await warm.stop();
  const baseline = legitimateClient(world, { concurrency: knobs.normalConcurrency });
  await sleep(knobs.baselineSeconds * 1000);
  const baselineResult = await baseline.stop();

  // Open the attack, 50 handshakes at a time (the attacker's machine is this one, too).
  const opening = performance.now();
  for (let i = 0; i < knobs.idle; i += 50) await Promise.all(Array.from({ length: Math.min(50, knobs.idle - i) }, idleConnection));
  const slowLoops = Array.from({ length: knobs.slow }, () => slowConnection());
  const openedIn = (performance.now() - opening) / 1000;

  const fds = [];
  const rss = [];
  const clientSockets = [];
  const sampler = setInterval(() => {
    fds.push(fdCount(world.pid));
    rss.push(rssMiB(world.pid));
    clientSockets.push(socketsOf(world).clients);
  }, 1_000);
  const normal = legitimateClient(world, { concurrency: knobs.normalConcurrency });
  await sleep(knobs.measureSeconds * 1000);
  const normalResult = await normal.stop();
  clearInterval(sampler);
  const idleOpenAtEnd = [...sockets].length;

  stopping = true;
  for (const s of sockets) s.destroy();
  await Promise.race([Promise.all(slowLoops), bound(5_000)]);
  // keygate lets go of what the clients closed (no CLOSE-WAIT left over): up to 10 s.
  const closedAt = performance.now();
  let fdAfter = fdCount(world.pid);
  let after = socketsOf(world);
  while ((after.clients > 0 || fdAfter > fdBefore + after.upstream + 10) && performance.now() - closedAt < 10_000) {
    await sleep(250);
    fdAfter = fdCount(world.pid);
    after = socketsOf(world);
  }
  const fdAfterSeconds = (performance.now() - closedAt) / 1000;

  out('\n' + table([
    ['normal clients', 'requests', 'success %', 'p50 ms', 'p99 ms', 'p99 / baseline p99'],
    ['baseline', baselineResult.total, fmt(100 * baselineResult.successRate, 3), fmt(baselineResult.p50, 2), fmt(baselineResult.p99, 2), '1.0'],
    ['under attack', normalResult.total, fmt(100 * normalResult.successRate, 3), fmt(normalResult.p50, 2), fmt(normalResult.p99, 2), fmt(normalResult.p99 / baselineResult.p99, 1)],
  ]));
  out('\n' + table([
    ['keygate', 'before', 'during min', 'during max', 'after'],
    ['fds', fdBefore, Math.min(...fds), Math.max(...fds), `${fdAfter} (${fmt(fdAfterSeconds)} s after the clients left)`],
    ['client sockets (CLOSE-WAIT)', '-', Math.min(...clientSockets), Math.max(...clientSockets), `${after.clients} (${after.closeWait})`],
    ['upstream pool sockets', '-', '-', '-', after.upstream],
    ['RSS MiB', fmt(rssBefore), fmt(Math.min(...rss)), fmt(Math.max(...rss)), fmt(rssMiB(world.pid))],
  ]));
  out('\n' + table([
    ['attackers', 'value'],
    ['idle opened / failed / closed by keygate', `${stats.idleOpened} / ${stats.idleFailed} / ${stats.idleClosedByKeygate} (opened in ${fmt(openedIn)} s)`],
    ['slowloris opened / failed / closed by keygate / 408 seen', `${stats.slowOpened} / ${stats.slowFailed} / ${stats.slowClosedByKeygate} / ${stats.slow408}`],
    ['attack connections open at the end', idleOpenAtEnd],
  ]));
} finally {
  stopping = true;
  for (const s of sockets) s.destroy();
  await stopWorld();
}

// The shared harness's minimal Node proxy (../shared/bench/node-baseline/proxy.mjs) plus
// keygate's wire contract and nothing else: what any proxy must do per request to give the
// answers SPEC §4–§6 asks for, written as cheaply as we know how, with none of keygate's
// structure (no stages, no routes, no config, no reload, no protocols but HTTP/1.1).
//
// Why it exists: issue 11 asks keygate to spend no more CPU per request than the minimal
// proxy. This file measures the floor of that comparison — the CPU the contract itself costs on
// the same node:https + undici stack — so that keygate's cost splits into "the contract" (what
// this proxy pays too) and "keygate's own" (the rest). Run it as the harness's candidate:
//
//   CANDIDATE=contract bash bench/shared-candidate.sh run HARNESS
//
// Per request, over the baseline: the token's shape and CRC checked, its SHA-256 looked up
// (only digests are stored, SPEC §3); a token bucket taken; the forwarded headers of SPEC §4.5
// (x-keygate-account/-credential/-auth/-scopes, x-request-id, x-forwarded-for/-proto/-host)
// after stripping every incoming x-keygate-* and x-forwarded-client-cert; on the answer
// x-request-id and the six RateLimit headers; one JSON audit line (SPEC §6) through a buffered
// file writer; a request counter and a latency histogram as plain numbers.
//
// Env: PORT, UPSTREAM, BENCH_TLS_CERT, BENCH_TLS_KEY, BENCH_TOKEN (the kg_ token admitted, as
// account acct_0500), AUDIT_FILE (default: contract-audit-<pid>.log in the system's tmp dir).
import { hash, randomUUID } from 'node:crypto';
import { openSync, readFileSync, write as fsWrite } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Pool } from 'undici';

const env = process.env;
const token = env.BENCH_TOKEN ?? '';
const accounts = new Map([[hash('sha256', token, 'hex'), { account: 'acct_0500', id: 'tok_contract00001', scopes: 'bench:read' }]]);
const pool = new Pool(env.UPSTREAM ?? env.BENCH_UPSTREAM ?? 'http://127.0.0.1:8080', { connections: 128, keepAliveTimeout: 60_000 });
const DROP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection',
  'proxy-authorization', 'proxy-authenticate', 'host', 'x-api-key', 'x-forwarded-client-cert', 'x-forwarded-for',
  'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']);

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SHAPE = /^kg_(?:[a-z][a-z0-9]{0,15}_)?[0-9A-Za-z]{33}([0-9A-Za-z]{6})$/;
function checksumOk(t, check) {
  let v = crc32(t.slice(0, t.length - 6));
  for (let i = 5; i >= 0; i--) {
    if (ALPHABET[v % 62] !== check[i]) return false;
    v = Math.floor(v / 62);
  }
  return true;
}

// A token bucket per credential, refilled lazily (the limiter keygate's `default` policy is).
const RATE = 1_000_000, BURST = 1_000_000;
const buckets = new Map();
function take(id, nowMs) {
  let b = buckets.get(id);
  if (!b) buckets.set(id, (b = { tokens: BURST, at: nowMs }));
  b.tokens = Math.min(BURST, b.tokens + ((nowMs - b.at) * RATE) / 1000);
  b.at = nowMs;
  if (b.tokens < 1) return -1;
  b.tokens -= 1;
  return Math.floor(b.tokens);
}

// Audit lines copied into a 64 KiB buffer, written when it holds 32 KiB (one write in flight).
const fd = openSync(env.AUDIT_FILE ?? join(tmpdir(), `contract-audit-${process.pid}.log`), 'a');
let buf = Buffer.allocUnsafe(65536), off = 0, writing = false;
const queue = [];
function audit(line) {
  off += buf.write(line, off);
  if (off < 32768) return;
  queue.push(buf.subarray(0, off));
  buf = Buffer.allocUnsafe(65536);
  off = 0;
  kick();
}
function kick() {
  if (writing || !queue.length) return;
  writing = true;
  const b = queue.shift();
  fsWrite(fd, b, 0, b.length, null, () => { writing = false; kick(); });
}
setInterval(() => { if (off) { queue.push(buf.subarray(0, off)); buf = Buffer.allocUnsafe(65536); off = 0; kick(); } }, 1000).unref();

// Metrics as plain numbers until a scrape (there is none here).
const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const metrics = { requests: 0, histogram: new Array(BOUNDS.length + 1).fill(0) };
function observe(seconds) {
  metrics.requests++;
  let i = 0;
  while (i < BOUNDS.length && seconds > BOUNDS[i]) i++;
  metrics.histogram[i]++;
}

const REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;
function refuse(res, status, id) {
  res.writeHead(status, ['content-type', 'application/problem+json', 'x-content-type-options', 'nosniff', 'cache-control', 'no-store', 'x-request-id', id])
    .end(`{"type":"about:blank","title":"Unauthorized","status":${status},"detail":"no valid credential","requestId":"${id}"}`);
}

https.createServer({
  cert: readFileSync(env.BENCH_TLS_CERT), key: readFileSync(env.BENCH_TLS_KEY), keepAliveTimeout: 120_000,
}, (req, res) => {
  const started = performance.now();
  const nowMs = Date.now();
  const raw = req.rawHeaders;
  const forward = [];
  let key, host = '', rid, xff;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase(), value = raw[i + 1];
    if (name === 'x-api-key') key = value;
    else if (name === 'host') host = value;
    else if (name === 'x-request-id') rid = value;
    else if (name === 'x-forwarded-for') xff = value;
    if (DROP.has(name) || name.startsWith('x-keygate-') || name.includes('_')) continue;
    forward.push(name, value);
  }
  const requestId = rid !== undefined && REQUEST_ID.test(rid) ? rid : randomUUID();
  const m = key === undefined ? null : SHAPE.exec(key);
  const who = m && checksumOk(key, m[1]) ? accounts.get(hash('sha256', key, 'hex')) : undefined;
  const clientIp = req.socket.remoteAddress ?? '';
  const finish = (status, reason) => {
    const seconds = (performance.now() - started) / 1000;
    observe(seconds);
    audit(JSON.stringify({ time: new Date(nowMs).toISOString(), event: 'request', requestId, account: who?.account ?? null,
      credential: who?.id ?? null, auth: who ? 'api-key' : null, method: req.method, host, path: req.url, status,
      decision: status < 400 ? 'allow' : 'deny', reason, durationMs: Math.round(seconds * 1e6) / 1e3, clientIp }) + '\n');
  };
  if (!who) {
    refuse(res, 401, requestId);
    finish(401, 'KG_ERR_TOKEN_UNKNOWN');
    return;
  }
  const remaining = take(who.id, nowMs);
  forward.push('x-request-id', requestId, 'x-forwarded-for', xff ? `${xff}, ${clientIp}` : clientIp,
    'x-forwarded-proto', 'https', 'x-forwarded-host', host, 'x-keygate-account', who.account,
    'x-keygate-credential', who.id, 'x-keygate-auth', 'api-key', 'x-keygate-scopes', who.scopes);
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  pool.dispatch({ method: req.method, path: req.url, body: bodyless ? null : req, headers: forward }, {
    onRequestStart(ctl) { res.once('close', () => { if (!res.writableFinished) ctl.abort(new Error('client gone')); }); },
    onResponseStart(ctl, status, headers) {
      const out = [];
      for (const k in headers) if (!DROP.has(k) && !k.startsWith('ratelimit') && !k.startsWith('x-ratelimit')) out.push(k, headers[k]);
      const r = String(remaining), limit = String(BURST);
      out.push('x-request-id', requestId, 'ratelimit-limit', limit, 'ratelimit-remaining', r, 'ratelimit-reset', '0',
        'x-ratelimit-limit', limit, 'x-ratelimit-remaining', r, 'x-ratelimit-reset', '0');
      res.writeHead(status, out);
      res.statusCode = status;
    },
    onResponseData(ctl, chunk) { if (!res.write(chunk)) { ctl.pause(); res.once('drain', () => ctl.resume()); } },
    onResponseEnd() { res.end(); finish(res.statusCode, 'forwarded'); },
    onResponseError() { if (!res.headersSent) res.writeHead(502); res.end(); finish(502, 'KG_ERR_UPSTREAM_UNAVAILABLE'); },
  });
}).listen(Number(env.PORT ?? env.BENCH_PORT ?? 9443), '127.0.0.1', () => console.log(`contract proxy on 127.0.0.1:${env.PORT ?? env.BENCH_PORT ?? 9443}`));
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));

// Small tools the integration tests share beyond test/helpers: a raw TLS client (for request
// heads that Node's HTTP client refuses to send), a controllable upstream that answers only
// when the test says so, Prometheus text parsing, an atomic file write (the way operators
// and Kubernetes replace files, so that a watcher never reads half a file), and reading what a
// running keygate binary shows of itself (metrics, audit file, log, admin API).
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { loadConfigOrThrow } from '../../src/config/load.js';
import { FileStore } from '../../src/store/file/file-store.js';
import { createAccount, createToken, parseExpiry } from '../../src/store/operations.js';
import { eventually, readJsonLines, type TestEnv } from '../helpers/harness.js';

/**
 * Bound for a file's set-up: each CLI call is a Node start, and on a busy two-core machine a
 * set-up of a dozen calls can take most of a minute. Generous, but a bound.
 */
export const SETUP_TIMEOUT_MS = 120_000;

/** Bound for a test that runs the CLI a few times. */
export const CLI_TEST_TIMEOUT_MS = 60_000;

export interface RawResult {
  /** Everything the server sent before it closed (or before the bound). */
  text: string;
  status: number | undefined;
  /** True when the server closed the connection within the bound. */
  closed: boolean;
}

/**
 * Sends `head` (and optional body) over a fresh TLS connection and collects the answer until
 * the server closes the connection or `timeoutMs` passes. Send `Connection: close` to have a
 * complete answer end the connection.
 */
export function rawRequest(opts: { port: number; servername?: string; ca: string; data: string | Buffer; timeoutMs?: number; end?: boolean }): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = tls.connect({ host: '127.0.0.1', port: opts.port, servername: opts.servername ?? 'api.test', ca: opts.ca, ALPNProtocols: ['http/1.1'] }, () => {
      socket.write(opts.data);
      if (opts.end) socket.end();
    });
    const done = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : undefined, closed });
    };
    const timer = setTimeout(() => done(false), opts.timeoutMs ?? 5_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => done(true));
    socket.on('close', () => done(true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset after the answer still counts as the server closing the connection.
      if (chunks.length > 0 || err.code === 'ECONNRESET') return done(true);
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}

/** The JSON body of a raw HTTP/1.1 answer (Content-Length framed). */
export function rawJson(r: RawResult): Record<string, unknown> {
  const at = r.text.indexOf('\r\n\r\n');
  return JSON.parse(r.text.slice(at + 4)) as Record<string, unknown>;
}

/** A port nothing listens on: bound, then closed again. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface PlainUpstream {
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

/** An upstream whose every answer is written by the test. */
export async function startUpstream(handler: http.RequestListener): Promise<PlainUpstream> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A promise with its resolve function outside: the handshakes between test and upstream. */
export function signal<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * The test env's upstream, except that a request for `path` is held, unanswered, until the test
 * answers it: an in-flight request for drain and signal tests. `expect()` arms it for the next
 * such request and returns it: `arrived` resolves when it reaches the upstream, then `res` is set.
 */
export interface HeldRequest {
  res: http.ServerResponse | undefined;
  arrived: ReturnType<typeof signal<void>>;
}

export function holdingUpstream(env: TestEnv, path = '/api/items/hold'): { expect(): HeldRequest } {
  let current: HeldRequest = { res: undefined, arrived: signal() };
  env.upstream.handle((req, res) => {
    if (req.url === path) {
      current.res = res;
      current.arrived.resolve();
      return;
    }
    res.writeHead(200, { 'content-length': '2' }).end('ok');
  });
  return {
    expect: () => (current = { res: undefined, arrived: signal() }),
  };
}

/** Rejects when `p` takes longer than `ms`: a bound on every wait for another party. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

/** GET on the admin listener (plain HTTP, loopback). */
export function adminGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error('admin request timed out')));
    req.on('error', reject);
  });
}

/**
 * The value of a sample in Prometheus text format, or 0 when the series does not exist yet:
 * the sum over every series of `name` that carries all of `labels` (a series may have more,
 * e.g. keygate_requests_total's `protocol`; list them to pick one).
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = new Set((m[2] ?? '').match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []);
    if (want.every((w) => got.has(w))) sum += Number(m[3]);
  }
  return sum;
}

/** Replaces `file` in one rename, as editors and config management do. */
export function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

// ---- What a running keygate binary shows of itself ----------------------------------------
// The child's interfaces: /metrics on its admin listener, JSON lines in the audit file (the
// sink writes at least once a second, so a line is awaited, never expected at once), and its
// operational log on stderr.

/** Bound for an audit line to reach the file: the sink flushes once a second, later on a busy machine. */
export const AUDIT_FLUSH_MS = 5_000;

/** The Prometheus text of a running keygate's admin listener. */
export async function metricsOf(proxy: { adminPort: number }): Promise<string> {
  const r = await adminGet(proxy.adminPort, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return r.body;
}

/** The JSON lines keygate wrote to stderr (its operational log). */
export function logLines(proxy: { stderr(): string }): Array<Record<string, unknown>> {
  return proxy
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * Waits (bounded) until the audit file holds a line that `match` accepts, and returns every
 * line it accepts. Use a request id (sent or echoed) to pick a request's own line.
 */
export async function awaitAudit(file: string, match: (line: Record<string, unknown>) => boolean, timeoutMs = AUDIT_FLUSH_MS): Promise<Array<Record<string, unknown>>> {
  let found: Array<Record<string, unknown>> = [];
  await eventually(() => (found = readJsonLines(file).filter(match)).length > 0, timeoutMs);
  return found;
}

/** A JSON call on the admin API of a running keygate (plain HTTP on loopback). */
export async function adminCall(port: number, secret: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; body: any; text: string; headers: Headers }> {
  const headers: Record<string, string> = { ...(secret ? { authorization: `Bearer ${secret}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body: body !== undefined ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

/**
 * Waits (bounded) until a running keygate holds credential `id` in memory, asking its admin API
 * with an admin token it already knows. For tests where polling the proxy itself would spend
 * the very budgets under test (rate limits, failed-authentication limits).
 */
export async function awaitLoaded(proxy: { adminPort: number }, adminSecret: string, id: string, timeoutMs = 3_000): Promise<void> {
  await eventually(async () => (await adminCall(proxy.adminPort, adminSecret, 'GET', `/admin/v1/tokens/${encodeURIComponent(id)}`)).status === 200, timeoutMs);
}

/**
 * What env.token makes (an account if missing, then a token), written straight into the
 * credential file with the lifecycle operations the CLI runs, without the two CLI start-ups.
 * For set-up where the CLI is not what a test is about; the CLI itself is tested in test/cli.
 */
export async function seedToken(env: TestEnv, account: string, opts: { scopes?: string[]; roles?: string[]; tokenScopes?: string[]; expires?: string; policy?: string; label?: string } = {}): Promise<{ secret: string; id: string }> {
  const { config } = loadConfigOrThrow(env.configFile);
  const ctx = { config, now: new Date() };
  let made: { secret: string; id: string } | undefined;
  await new FileStore(env.credentialsFile).update((data) => {
    if (!data.accounts.some((a) => a.name === account)) createAccount(data, { name: account, roles: opts.roles ?? (opts.scopes ? [] : ['editor']), scopes: opts.scopes ?? [] }, ctx);
    const r = createToken(data, { account, scopes: opts.tokenScopes, expiresAt: opts.expires ? parseExpiry(opts.expires, ctx.now) : null, policy: opts.policy, label: opts.label }, ctx);
    made = { secret: r.secret, id: r.record.id };
  });
  return made!;
}

// One temporary world per test file: a PKI minted for the test, a recording upstream on port
// 0, a keygate.yaml and credential file in a temp folder, the CLI (the built code, run in this
// process; see runCli), and keygate itself as the real binary (startChild: what integration
// scenarios run against) or in-process (startInProcess: only where an injected clock is what the test is about).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Registry } from 'prom-client';
import { parse, stringify } from 'yaml';
// Types only: src/ is loaded by startInProcess alone, so that a test file on the binary does
// not import (and transform) the whole proxy for nothing.
import type { KeygateInstance } from '../../src/instance.js';
import type { MemoryAuditSink } from '../../src/observe/audit.js';
import { startEchoUpstream, type EchoUpstream } from './echo-upstream.js';
import { mintCa, mintServer, type Authority, type Issued } from './pki.js';

export const BIN = fileURLToPath(new URL('../../dist/cli/keygate.js', import.meta.url));
const PROGRAM = pathToFileURL(join(BIN, '..', 'program.js')).href;
export const API_HOST = 'api.test';
export const MTLS_HOST = 'clientauth.api.test';

export type ConfigObject = Record<string, unknown>;

export interface TestEnv {
  dir: string;
  serverCa: Issued & { authority: Authority };
  clientCa: Issued & { authority: Authority };
  upstream: EchoUpstream;
  configFile: string;
  credentialsFile: string;
  auditFile: string;
  /**
   * Writes keygate.yaml (or `file`, a second config in the same folder): the defaults
   * deep-merged with `overrides` (arrays are replaced; a key set to undefined is left out). In
   * one rename, so that a running keygate's watcher never reads half a file.
   */
  writeConfig(overrides?: ConfigObject, file?: string): ConfigObject;
  cli(args: string[], opts?: CliOptions): Promise<CliResult>;
  /** Creates an account (if missing) and a token through the CLI; returns the secret and id. */
  token(account: string, opts?: { scopes?: string[]; roles?: string[]; tokenScopes?: string[]; expires?: string; policy?: string; label?: string }): Promise<{ secret: string; id: string }>;
  startInProcess(opts?: { now?: () => number }): Promise<InProcessProxy>;
  /**
   * The built binary on keygate.yaml, or on `configFile`; call it N times for N replicas of one
   * config. `readyTimeoutMs` (default 15 s) bounds the wait for "keygate listening".
   */
  startChild(opts?: { env?: NodeJS.ProcessEnv; configFile?: string; readyTimeoutMs?: number }): Promise<ChildProxy>;
  cleanup(): Promise<void>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface InProcessProxy {
  instance: KeygateInstance;
  audit: MemoryAuditSink;
  registry: Registry;
  port: number;
  adminPort: number;
  close(): Promise<void>;
}

export interface ChildProxy {
  child: ChildProcess;
  port: number;
  adminPort: number;
  clientAuthPort?: number;
  stdout(): string;
  stderr(): string;
  /** Sends a signal and waits (bounded) for the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepMerge(base: ConfigObject, over: ConfigObject): ConfigObject {
  const out: ConfigObject = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as ConfigObject, v) : v;
  return out;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** The working folder: the binary, as a child started there. */
  cwd?: string;
  /** The binary, as a child process: exit codes, signals and start-up as an operator sees them. */
  spawn?: boolean;
  /** The bound on a command run as a child (killed after it); an in-process run ends with its test's timeout. */
  timeoutMs?: number;
}

/** Commands that keep running (a proxy) or start one: a child process, always. */
const LONG_RUNNING = new Set(['serve', 'dev']);

/**
 * One `keygate` command. By default the built CLI program (dist/cli/program.js, what the binary
 * runs: `runCli(argv, io, env)`) in this process, with its output and exit code captured: a
 * child's node start-up cost ~0.3 s idle and seconds under load for each of the suite's
 * hundreds of commands, most of the suite's time. What only a process shows — the exit status,
 * the working folder, a long-running command — runs the binary as a child: `spawn`, `cwd`,
 * `serve` and `dev`.
 */
export async function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  if (opts.spawn || opts.cwd !== undefined || LONG_RUNNING.has(args[0]!)) return spawnCli(args, opts);
  const program = (await import(PROGRAM)) as typeof import('../../src/cli/program.js');
  let stdout = '';
  let stderr = '';
  const io = { out: (t: string) => void (stdout += t), err: (t: string) => void (stderr += t), in: Readable.from(opts.input ? [opts.input] : []) };
  const code = await program.runCli(['node', BIN, ...args], io, { ...process.env, ...opts.env });
  return { code, stdout, stderr };
}

function spawnCli(args: string[], opts: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    // A node start-up takes half a second on an idle machine and seconds on a loaded one; the
    // bound is for a CLI that hangs, not for a slow machine.
    const limit = opts.timeoutMs ?? 45_000;
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, limit);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr: killed ? `${stderr}\n[test harness: keygate ${args[0]} killed after ${limit} ms]` : stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export async function createTestEnv(): Promise<TestEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-test-'));
  const serverCa = await mintCa('test server CA');
  const server = await mintServer(serverCa.authority, [API_HOST, MTLS_HOST, 'localhost', '127.0.0.1']);
  const clientCa = await mintCa('test client CA');
  writeFileSync(join(dir, 'server.crt'), server.certPem + serverCa.certPem);
  writeFileSync(join(dir, 'server.key'), server.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'server-ca.crt'), serverCa.certPem);
  writeFileSync(join(dir, 'client-ca.crt'), clientCa.certPem);
  writeFileSync(join(dir, 'client-ca.key'), clientCa.keyPem, { mode: 0o600 });
  const upstream = await startEchoUpstream();
  const configFile = join(dir, 'keygate.yaml');
  const children: ChildProxy[] = [];
  const starting = new Set<ChildProcess>();
  const inProcess: InProcessProxy[] = [];

  const defaults = (): ConfigObject => ({
    listen: {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: 'server.crt', key: 'server.key' },
      clientAuth: { hostPrefix: 'clientauth.', ca: 'client-ca.crt', caKey: 'client-ca.key' },
    },
    admin: { host: '127.0.0.1', port: 0 },
    routes: [
      { pathPrefix: '/healthz', upstream: upstream.url, public: true },
      { pathPrefix: '/', upstream: upstream.url, timeout: '5s' },
    ],
    scopes: {
      'items:read': ['GET /api/items', 'GET /api/items/**'],
      'items:write': ['POST /api/items', 'PUT /api/items/*', 'DELETE /api/items/*'],
      'reports:read': ['GET /api/reports/*'],
    },
    roles: { viewer: ['items:read'], editor: ['items:read', 'items:write'], admin: ['keygate:admin'] },
    policies: { default: { rate: '1000/s', burst: 1000 } },
    store: { file: 'credentials.yaml', usageFlushInterval: '200ms' },
    audit: { output: 'audit.log' },
  });

  const env: TestEnv = {
    dir,
    serverCa,
    clientCa,
    upstream,
    configFile,
    credentialsFile: join(dir, 'credentials.yaml'),
    auditFile: join(dir, 'audit.log'),
    writeConfig(overrides = {}, file = configFile) {
      const cfg = deepMerge(defaults(), overrides);
      const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, stringify(cfg));
      renameSync(tmp, file);
      return cfg;
    },
    cli: (args, opts = {}) => runCli([...args, '-c', configFile], opts),
    async token(account, opts = {}) {
      // Whether the account exists is read from the credential file: a CLI start-up each time
      // only to ask would double the cost of every token a test makes.
      const stored = existsSync(env.credentialsFile) ? (parse(readFileSync(env.credentialsFile, 'utf8')) as { accounts?: Array<{ name: string }> } | null) : null;
      if (!stored?.accounts?.some((a) => a.name === account)) {
        const args = ['account', 'create', '--name', account];
        for (const r of opts.roles ?? (opts.scopes ? [] : ['editor'])) args.push('--role', r);
        for (const s of opts.scopes ?? []) args.push('--scope', s);
        const created = await env.cli(args);
        if (created.code !== 0) throw new Error(`account create failed: ${created.stderr}`);
      }
      const args = ['token', 'create', '--account', account, '--json'];
      for (const s of opts.tokenScopes ?? []) args.push('--scope', s);
      if (opts.expires) args.push('--expires', opts.expires);
      if (opts.policy) args.push('--policy', opts.policy);
      if (opts.label) args.push('--label', opts.label);
      const r = await env.cli(args);
      if (r.code !== 0) throw new Error(`token create failed: ${r.stderr}`);
      const j = JSON.parse(r.stdout) as { token: string; id: string };
      return { secret: j.token, id: j.id };
    },
    async startInProcess(opts = {}) {
      const [{ Registry }, { mountAdminApi }, { startKeygate }, { MemoryAuditSink }, { silentLogger }] = await Promise.all([
        import('prom-client'),
        import('../../src/admin/api.js'),
        import('../../src/instance.js'),
        import('../../src/observe/audit.js'),
        import('../../src/observe/logger.js'),
      ]);
      const audit = new MemoryAuditSink();
      const registry = new Registry();
      const instance = await startKeygate({ configFile, logger: silentLogger(), audit, registry, adminApi: mountAdminApi, ...(opts.now ? { now: opts.now } : {}) });
      const p: InProcessProxy = { instance, audit, registry, port: instance.https.port, adminPort: instance.admin?.port ?? 0, close: () => instance.close() };
      inProcess.push(p);
      return p;
    },
    async startChild(opts = {}) {
      const child = spawn(process.execPath, [BIN, 'serve', '-c', opts.configFile ?? configFile], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d));
      const ready = new Promise<{ https: string; admin?: string; clientAuth?: string }>((resolve, reject) => {
        const bound = opts.readyTimeoutMs ?? 45_000;
        const timer = setTimeout(() => {
          // Not left running: nothing else would stop a child that never said it listens.
          child.kill('SIGKILL');
          reject(new Error(`keygate did not start within ${bound / 1000} s:\n${err}`));
        }, bound);
        child.stderr!.on('data', (d: Buffer) => {
          err += d;
          for (const line of err.split('\n')) {
            if (!line.includes('keygate listening')) continue;
            clearTimeout(timer);
            resolve(JSON.parse(line));
          }
        });
        child.on('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`keygate exited with ${code} before listening:\n${err}`));
        });
      });
      // Tracked from the start, so that cleanup() also stops one still starting (a set-up that
      // gave up on its siblings).
      starting.add(child);
      const addr = await ready.finally(() => starting.delete(child));
      const portOf = (a?: string) => (a ? Number(a.slice(a.lastIndexOf(':') + 1)) : 0);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const p: ChildProxy = {
        child,
        port: portOf(addr.https),
        adminPort: portOf(addr.admin),
        clientAuthPort: addr.clientAuth ? portOf(addr.clientAuth) : undefined,
        stdout: () => out,
        stderr: () => err,
        async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
          if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
          child.kill(signal);
          const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
          const code = await exited;
          clearTimeout(timer);
          return code;
        },
      };
      children.push(p);
      return p;
    },
    async cleanup() {
      for (const c of starting) c.kill('SIGKILL');
      await Promise.all(children.map((c) => c.stop('SIGKILL', 2_000)));
      await Promise.all(inProcess.map((p) => p.close()));
      await upstream.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  env.writeConfig();
  return env;
}

/**
 * The JSON lines of a log file (audit, usage); [] while it does not exist. Every whole line must
 * parse. The text after the last newline is a line still being written (a reader can see part
 * of a write in progress to an append-only file): it is left for the next read.
 */
export function readJsonLines(file: string): Array<Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// ---- HTTPS client ----------------------------------------------------------------------------

export interface RequestOptions {
  port: number;
  /** TLS server name (SNI); default api.test. */
  servername?: string;
  /** Host header; default the server name. */
  host?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** PEM of the trusted server CA. */
  ca?: string;
  cert?: string;
  key?: string;
  /** A PKCS#12 client bundle and its password, instead of cert and key. */
  pfx?: Buffer;
  passphrase?: string;
  agent?: https.Agent | false;
  timeoutMs?: number;
}

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

export function request(opts: RequestOptions): Promise<Response> {
  const servername = opts.servername ?? API_HOST;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: opts.port,
        servername,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: { host: opts.host ?? servername, ...opts.headers },
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        pfx: opts.pfx,
        passphrase: opts.passphrase,
        agent: opts.agent ?? false,
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Polls `fn` until it returns true, every 25 ms, at most `timeoutMs`. */
export async function eventually(fn: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

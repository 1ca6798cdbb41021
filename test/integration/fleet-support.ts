// What the fleet tests share: N real keygate replicas on one Redis (a key prefix of each test
// file's own, deleted afterwards), requests over keep-alive HTTPS (so that probing a replica
// every few milliseconds costs no handshake), the admin API, metrics, the time a change takes
// to be enforced everywhere, and a scan for secrets in everything the fleet wrote.
import { performance } from 'node:perf_hooks';
import https from 'node:https';
import { expect } from 'vitest';
import { hashToken } from '../../src/store/token-format.js';
import { request, type ChildProxy, type ConfigObject, type TestEnv } from '../helpers/harness.js';
import { dumpPrefix, SHARED_REDIS, testPrefix } from '../store/redis-support.js';
import { adminGet, sample } from './support.js';

export { deletePrefix, SHARED_REDIS } from '../store/redis-support.js';

/**
 * Bound for a fleet file's set-up: a handful of CLI runs and several replicas starting at once,
 * which on a busy two-core machine can take minutes. Generous, but a bound.
 */
export const FLEET_SETUP_MS = 240_000;

/** A prefix of this file's own under the kgtest: namespace the store tests use. */
export function fleetPrefix(): string {
  return testPrefix();
}

/** Config overrides for store.redis (on the shared Redis unless `url` says otherwise). */
export function onRedis(prefix: string, redis: Record<string, unknown> = {}): ConfigObject {
  return { store: { redis: { url: SHARED_REDIS, prefix, ...redis } } };
}

/** Starts `n` replicas of one config at once (each given a minute: several start together on a busy machine). */
export async function startReplicas(env: TestEnv, n: number, opts: { configFile?: string } = {}): Promise<ChildProxy[]> {
  return Promise.all(Array.from({ length: n }, () => env.startChild({ ...opts, readyTimeoutMs: 60_000 })));
}

/** One keep-alive agent per test file; destroy() in afterAll. */
export class Client {
  private readonly agent = new https.Agent({ keepAlive: true, maxSockets: 16 });

  constructor(private readonly env: TestEnv) {}

  /** GET through the public listener with the token as x-api-key. */
  async call(port: number, secret: string, path = '/api/items'): Promise<{ status: number; code?: string; headers: Record<string, string | string[] | undefined> }> {
    const r = await request({ port, ca: this.env.serverCa.certPem, path, headers: { 'x-api-key': secret }, agent: this.agent, timeoutMs: 5_000 });
    let code: string | undefined;
    if (r.status >= 400 && r.body.startsWith('{')) code = (r.json() as { code?: string }).code;
    return { status: r.status, code, headers: r.headers };
  }

  async status(port: number, secret: string): Promise<number> {
    return (await this.call(port, secret)).status;
  }

  destroy(): void {
    this.agent.destroy();
  }
}

/** The admin API of a replica (plain HTTP on loopback). */
export async function adminApi(adminPort: number, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/admin/v1/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

export async function metric(adminPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = await adminGet(adminPort, '/metrics');
  expect(r.status).toBe(200);
  return sample(r.body, name, labels);
}

/**
 * Probes every replica with `secret` until each answers `status` (with `code`, if given);
 * returns the ms from `t0` to the moment the last one did. Bounded by `timeoutMs`.
 */
export async function enforcedEverywhere(client: Client, replicas: readonly ChildProxy[], secret: string, want: { status: number; code?: string }, t0: number, timeoutMs = 5_000): Promise<number> {
  const at = await Promise.all(
    replicas.map(async (r, i) => {
      const deadline = t0 + timeoutMs;
      for (;;) {
        const got = await client.call(r.port, secret);
        if (got.status === want.status && (want.code === undefined || got.code === want.code)) return performance.now() - t0;
        if (performance.now() > deadline) throw new Error(`replica ${i}: still ${got.status} ${got.code ?? ''} after ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 5));
      }
    }),
  );
  return Math.max(...at);
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/**
 * Every secret found in Redis under `prefix` or in `texts` (logs, audit, stderr), as
 * "where: secret id". Also asserts that the scan saw token data at all (the hash of one of
 * the secrets), so that an empty dump cannot pass for a clean one.
 */
export async function secretsLeaked(prefix: string, secrets: readonly string[], texts: Record<string, string>, url = SHARED_REDIS): Promise<string[]> {
  expect(secrets.length).toBeGreaterThan(0);
  const dump = await dumpPrefix(prefix, url);
  const all = [...dump.values()].join('\n');
  expect(all, 'the Redis dump holds the token hashes').toContain(hashToken(secrets[0]!));
  const found: string[] = [];
  const sources: Record<string, string> = { redis: all, ...texts };
  for (const [where, text] of Object.entries(sources)) {
    secrets.forEach((s, i) => {
      // The whole secret, and its random part alone (the part after the last underscore).
      if (text.includes(s) || text.includes(s.slice(s.lastIndexOf('_') + 1))) found.push(`${where}: secret #${i}`);
    });
  }
  return found;
}

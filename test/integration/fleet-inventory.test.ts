// Three real keygate replicas on one Redis behave as one keygate for the inventory: what the CLI
// creates and what the admin API of one replica creates works on all three; twenty CLI
// processes creating a token at the same instant all land; a revocation through one replica's
// admin API is enforced by every replica within 1 s (p50/p99 over 20 revocations are printed);
// admin audit lines name the replica that made the change; and no secret is in Redis or in
// anything the replicas and the CLI wrote.
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintToken } from '../../src/store/token-format.js';
import { createTestEnv, eventually, runCli, type ChildProxy, type CliResult, type TestEnv } from '../helpers/harness.js';
import { adminApi, Client, deletePrefix, enforcedEverywhere, fleetPrefix, onRedis, percentile, secretsLeaked, startReplicas, FLEET_SETUP_MS } from './fleet-support.js';

vi.setConfig({ testTimeout: 120_000 });

const prefix = fleetPrefix();
let env: TestEnv;
let client: Client;
let B: ChildProxy;
let C: ChildProxy;
let replicas: ChildProxy[];
let adminSecret: string;
let cliToken: { secret: string; id: string };
let apiToken: { secret: string; id: string };
const parallel: Array<{ secret: string; id: string }> = [];
const secrets: string[] = [];
/** stderr of every CLI run (stdout carries the secrets by design). */
const cliStderr: string[] = [];

async function cli(args: string[], timeoutMs = 60_000, spawn = false): Promise<CliResult> {
  const r = await runCli([...args, '-c', env.configFile], { timeoutMs, spawn });
  cliStderr.push(r.stderr);
  return r;
}

async function created(r: CliResult): Promise<{ secret: string; id: string }> {
  expect(r.code, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout) as { token: string; id: string };
  secrets.push(j.token);
  return { secret: j.token, id: j.id };
}

beforeAll(async () => {
  env = await createTestEnv();
  // Audit on stdout, as in a pod: each replica's lines in its own stream (the CLI's go to its
  // stderr). A generous connectTimeout: twenty CLI processes starting at once on a busy two-core
  // machine can take seconds to finish their first handshake with Redis.
  env.writeConfig({ ...onRedis(prefix, { connectTimeout: '15s' }), audit: { output: 'stdout' } });
  client = new Client(env);
  expect((await cli(['account', 'create', '--name', 'ops', '--role', 'admin'])).code).toBe(0);
  adminSecret = (await created(await cli(['token', 'create', '--account', 'ops', '--json']))).secret;
  expect((await cli(['account', 'create', '--name', 'from-cli', '--role', 'viewer'])).code).toBe(0);
  cliToken = await created(await cli(['token', 'create', '--account', 'from-cli', '--json']));
  replicas = await startReplicas(env, 3);
  [, B, C] = replicas as [ChildProxy, ChildProxy, ChildProxy];
}, FLEET_SETUP_MS);

afterAll(async () => {
  client?.destroy();
  await env?.cleanup();
  await deletePrefix(prefix);
});

describe('one inventory, managed from anywhere', () => {
  it('a token created with the CLI and one created through replica B\'s admin API work on A, B and C', async () => {
    const account = await adminApi(B.adminPort, adminSecret, 'POST', 'accounts', { name: 'from-api', roles: ['viewer'] });
    expect(account.status).toBe(201);
    const token = await adminApi(B.adminPort, adminSecret, 'POST', 'tokens', { account: 'from-api', label: 'made on B' });
    expect(token.status).toBe(201);
    apiToken = { secret: token.body.token, id: token.body.id };
    secrets.push(apiToken.secret);

    // B answered after applying it itself; A and C follow within a second.
    expect(await client.status(B.port, apiToken.secret)).toBe(200);
    const t0 = performance.now();
    await enforcedEverywhere(client, replicas, apiToken.secret, { status: 200 }, t0, 1_000);
    for (const r of replicas) {
      expect(await client.status(r.port, cliToken.secret)).toBe(200);
      expect(await client.status(r.port, apiToken.secret)).toBe(200);
      // Refused twin: a well-formed token nobody created.
      expect((await client.call(r.port, mintToken(null))).code).toBe('KG_ERR_TOKEN_UNKNOWN');
    }

    // The CLI sees what the admin API of B wrote.
    const list = await cli(['token', 'list', '--format', 'json']);
    expect(list.code, list.stderr).toBe(0);
    const ids = (JSON.parse(list.stdout) as Array<{ id: string; account: string }>).map((t) => t.id);
    expect(ids).toEqual(expect.arrayContaining([cliToken.id, apiToken.id]));
    expect(ids).toHaveLength(3);

    // The admin audit line names the replica that made the change, and the change log the actor.
    const auditOf = (r: ChildProxy) => r.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    await eventually(() => auditOf(B).some((e) => e.event === 'token.created' && e.target === apiToken.id), 3_000);
    const line = auditOf(B).find((e) => e.event === 'token.created' && e.target === apiToken.id)!;
    expect(line.actor).toBe('admin:ops');
    expect(String(line.replica)).toMatch(new RegExp(`:${B.child.pid}$`));
  });

  it('twenty `token create` run at once from twenty processes all land, and work everywhere', async () => {
    expect((await cli(['account', 'create', '--name', 'crowd', '--role', 'viewer'])).code).toBe(0);
    // Twenty Node processes starting at once: on a busy two-core machine that takes a while.
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => cli(['token', 'create', '--account', 'crowd', '--label', `writer ${i}`, '--json'], 180_000, true)));
    for (const r of runs) parallel.push(await created(r));
    expect(new Set(parallel.map((t) => t.id)).size).toBe(20);

    const list = await cli(['token', 'list', '--account', 'crowd', '--format', 'json']);
    expect(list.code, list.stderr).toBe(0);
    const listed = (JSON.parse(list.stdout) as Array<{ id: string; label: string }>).map((t) => t.id).sort();
    expect(listed).toEqual(parallel.map((t) => t.id).sort());

    // Each works on every replica (each replica applied all twenty changes).
    for (const t of parallel) for (const r of replicas) expect(await client.status(r.port, t.secret), `${t.id} on replica ${r.port}`).toBe(200);
  }, 240_000);
});

describe('revocation everywhere within a second', () => {
  it('twenty revocations through replica C\'s admin API: A, B and C all refuse each within 1 s (p99)', async () => {
    expect(parallel).toHaveLength(20);
    const took: number[] = [];
    const apiCall: number[] = [];
    for (const t of parallel) {
      const t0 = performance.now();
      const r = await adminApi(C.adminPort, adminSecret, 'POST', `tokens/${t.id}/revoke`, { reason: 'fleet test' });
      expect(r.status).toBe(200);
      apiCall.push(performance.now() - t0);
      took.push(await enforcedEverywhere(client, replicas, t.secret, { status: 401, code: 'KG_ERR_TOKEN_REVOKED' }, t0, 5_000));
    }
    const fmt = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
    console.info(`revocation through C's admin API → enforced by A, B and C: ${fmt(took)} (the API call alone: ${fmt(apiCall)}; n=${took.length})`);
    expect(percentile(took, 99)).toBeLessThanOrEqual(1_000);

    // Refused twin: what was not revoked still works everywhere.
    for (const r of replicas) {
      expect(await client.status(r.port, cliToken.secret)).toBe(200);
      expect(await client.status(r.port, apiToken.secret)).toBe(200);
    }
  }, 120_000);

  it('a revocation with the CLI is enforced by all three within 1 s', async () => {
    const t0 = performance.now();
    const r = await cli(['token', 'revoke', cliToken.id, '--reason', 'fleet test']);
    expect(r.code, r.stderr).toBe(0);
    const cliMs = performance.now() - t0;
    const t1 = performance.now();
    const took = await enforcedEverywhere(client, replicas, cliToken.secret, { status: 401, code: 'KG_ERR_TOKEN_REVOKED' }, t1, 1_000);
    console.info(`revocation with the CLI: the command took ${cliMs.toFixed(0)} ms; all three refused ${took.toFixed(0)} ms after it exited`);
  });
});

describe('no secret anywhere', () => {
  it('neither Redis nor any replica\'s stdout, stderr or audit, nor the CLI\'s stderr holds a secret', async () => {
    // Last-use times are flushed every 200 ms: let them land before scanning.
    await new Promise((r) => setTimeout(r, 400));
    const texts: Record<string, string> = { cli: cliStderr.join('\n') };
    replicas.forEach((r, i) => {
      texts[`replica ${i} stdout`] = r.stdout();
      texts[`replica ${i} stderr`] = r.stderr();
    });
    expect(texts['replica 1 stdout']).toContain(apiToken.id);
    expect(texts.cli).toContain(cliToken.id);
    expect(secrets.length).toBe(23);
    expect(await secretsLeaked(prefix, secrets, texts)).toEqual([]);
  });
});

// workers: 2 on the real binary: one supervisor and two worker processes share the listeners;
// requests are served by both (the audit line names the worker); /metrics on the one admin
// listener sums the workers; the admin API is served by worker 1 only and its changes reach
// both; audit lines from both workers under concurrent load arrive whole, none lost, in one
// file. And workers: 1 is one process, as before.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, readJsonLines, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { CLI_TEST_TIMEOUT_MS, SETUP_TIMEOUT_MS, adminGet, sample } from './support.js';
import { childPids, requestLines, workerPids } from './workers-support.js';

let env: TestEnv;
let proxy: ChildProxy;
let viewer: { secret: string; id: string };
let admin: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ workers: 2 });
  viewer = await env.token('svc', { roles: ['viewer'] });
  admin = await env.token('ops', { roles: ['admin'] });
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

const get = (path: string, secret = viewer.secret, agent?: https.Agent) => request({ port: proxy.port, ca: env.serverCa.certPem, path, headers: { 'x-api-key': secret }, ...(agent ? { agent } : {}) });

describe('workers: 2', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('runs a supervisor and two worker processes, and both serve requests on the one port', async () => {
    const pids = workerPids(proxy);
    expect([...pids.keys()].sort()).toEqual([1, 2]);
    expect(childPids(proxy.child.pid!).sort()).toEqual([...pids.values()].sort());

    // A new connection per request: the primary hands connections to the workers in turn.
    const statuses = [];
    for (let i = 0; i < 20; i++) statuses.push((await get(`/api/items/serve-${i}`)).status);
    expect(statuses.every((s) => s === 200)).toBe(true);
    await eventually(() => requestLines(env.auditFile, '/api/items/serve-').length === 20, 3_000);
    const lines = requestLines(env.auditFile, '/api/items/serve-');
    expect(new Set(lines.map((l) => l.worker))).toEqual(new Set([1, 2]));
    // The worker number is keygate's own bookkeeping: the upstream never sees it.
    const seen = env.upstream.received.filter((r) => r.url.startsWith('/api/items/serve-'));
    expect(seen).toHaveLength(20);
    for (const r of seen) expect(r.rawHeaders.join('\n')).not.toMatch(/worker/i);
  });

  it('answers /metrics on the one admin listener with every worker counted', async () => {
    const metrics = async () => (await adminGet(proxy.adminPort, '/metrics')).body;
    const series = { account: 'svc', auth: 'api-key', outcome: 'allowed' };
    const before = sample(await metrics(), 'keygate_requests_total', series);
    for (let i = 0; i < 30; i++) expect((await get(`/api/items/metric-${i}`)).status).toBe(200);
    await eventually(async () => sample(await metrics(), 'keygate_requests_total', series) === before + 30, 3_000);
    // …served by both, so a sum of one worker's counters would fall short.
    await eventually(() => requestLines(env.auditFile, '/api/items/metric-').length === 30, 3_000);
    const served = requestLines(env.auditFile, '/api/items/metric-');
    expect(served.filter((l) => l.worker === 1).length).toBeGreaterThan(0);
    expect(served.filter((l) => l.worker === 2).length).toBeGreaterThan(0);

    const text = await metrics();
    expect(sample(text, 'keygate_workers_configured')).toBe(2);
    expect(sample(text, 'keygate_workers_ready')).toBe(2);
    expect(sample(text, 'keygate_worker_restarts_total')).toBe(0);
    // Flags and timestamps are not summed: ready is 1 (every worker), not 2.
    expect(sample(text, 'keygate_ready')).toBe(1);
    expect(sample(text, 'keygate_store_up')).toBe(1);
    expect((await adminGet(proxy.adminPort, '/readyz')).status).toBe(200);
    expect((await adminGet(proxy.adminPort, '/healthz')).status).toBe(200);
  });

  it('serves the admin API from worker 1 alone; a change made there reaches both workers', async () => {
    const api = async (method: string, path: string, body?: unknown, token = admin.secret) => {
      const res = await fetch(`http://127.0.0.1:${proxy.adminPort}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    expect((await api('GET', '/admin/v1/accounts', undefined, viewer.secret)).status).toBe(403);
    const made = await api('POST', '/admin/v1/tokens', { account: 'svc', label: 'made over the admin API' });
    expect(made.status).toBe(201);
    const secret = made.body.token as string;
    // Both workers apply the change (each follows the store on its own, so one may be a
    // moment behind the other): within 2 s, fresh connections to either are all admitted.
    await eventually(async () => (await Promise.all(Array.from({ length: 6 }, () => get('/api/items/1', secret)))).every((r) => r.status === 200), 2_000);
    for (let i = 0; i < 10; i++) expect((await get(`/api/items/admin-made-${i}`, secret)).status).toBe(200);
    await eventually(() => requestLines(env.auditFile, '/api/items/admin-made-').length === 10, 3_000);
    expect(new Set(requestLines(env.auditFile, '/api/items/admin-made-').map((l) => l.worker))).toEqual(new Set([1, 2]));
    // explain looks at the live bucket through the supervisor (a peek, nothing taken).
    const explained = await api('GET', `/admin/v1/explain?account=svc&method=GET&path=${encodeURIComponent('/api/items/1')}`);
    expect(explained.status).toBe(200);
    expect(explained.body).toMatchObject({ decision: 'allow', policy: { name: 'default', burst: 1000 } });
    expect(explained.body.stages).toContainEqual({ stage: 'limit', verdict: 'pass' });
    const revoked = await api('POST', `/admin/v1/tokens/${made.body.id}/revoke`, {});
    expect(revoked.status).toBe(200);
    await eventually(async () => {
      const answers = await Promise.all(Array.from({ length: 6 }, () => get('/api/items/1', secret)));
      return answers.every((r) => r.status === 401 && r.json().code === 'KG_ERR_TOKEN_REVOKED');
    }, 2_000);
    // Written by one process: every admin API line comes from worker 1 (the CLI's own lines,
    // made by env.token, name no worker and are not counted here).
    const adminLines = readJsonLines(env.auditFile).filter((a) => String(a.actor).startsWith('admin:'));
    expect(adminLines.length).toBeGreaterThan(0);
    expect(new Set(adminLines.map((a) => a.worker))).toEqual(new Set([1]));
  });

  it('writes audit lines from both workers whole under concurrent load: every line parses, none lost', async () => {
    // Long lines (a 600-character path) from 24 keep-alive connections spread over both workers.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 24, ca: env.serverCa.certPem, servername: 'api.test' });
    const filler = 'x'.repeat(600);
    const total = 1_200;
    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 24 }, async () => {
        while (next < total) {
          const i = next++;
          statuses.push((await get(`/api/items/load-${i}-${filler}`, viewer.secret, agent)).status);
        }
      }),
    );
    agent.destroy();
    expect(statuses.filter((s) => s === 200)).toHaveLength(total);
    // requestLines parses every line of the file: one broken or interleaved line fails here.
    await eventually(() => requestLines(env.auditFile, '/api/items/load-').length >= total, 5_000);
    const lines = requestLines(env.auditFile, '/api/items/load-');
    expect(lines).toHaveLength(total);
    const ids = new Set(lines.map((l) => Number(/^\/api\/items\/load-(\d+)-/.exec(String(l.path))![1])));
    expect(ids.size).toBe(total);
    for (const l of lines) expect(l.path).toMatch(new RegExp(`-${filler}$`));
    expect(lines.filter((l) => l.worker === 1).length).toBeGreaterThan(total / 10);
    expect(lines.filter((l) => l.worker === 2).length).toBeGreaterThan(total / 10);
  });
});

describe('workers: 1', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('is one process, without a supervisor, and its audit lines name no worker', async () => {
    env.writeConfig({ workers: 1 });
    const single = await env.startChild();
    expect(childPids(single.child.pid!)).toEqual([]);
    const res = await request({ port: single.port, ca: env.serverCa.certPem, path: '/api/items/single', headers: { 'x-api-key': viewer.secret } });
    expect(res.status).toBe(200);
    expect(await single.stop('SIGTERM')).toBe(0);
    const line = requestLines(env.auditFile, '/api/items/single');
    expect(line).toHaveLength(1);
    expect(line[0]).not.toHaveProperty('worker');
    expect(single.stderr()).not.toMatch(/"role":"supervisor"/);
  });
});

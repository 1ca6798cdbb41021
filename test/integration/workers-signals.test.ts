// Signals and failures with workers: 2 on the real binary: SIGHUP to the supervisor reloads
// every worker (a scope change no file watcher could see takes effect on both); a worker
// killed with SIGKILL is replaced (logged, counted), traffic keeps flowing meanwhile, and the
// admin worker's replacement answers on the same admin port; SIGTERM drains every worker —
// /readyz 503, the request in flight finishes, new connections are refused — and exits 0.
import { mkdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, readJsonLines, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { CLI_TEST_TIMEOUT_MS, SETUP_TIMEOUT_MS, adminGet, holdingUpstream, sample, within, writeAtomic } from './support.js';
import { isAlive, requestLines, workerPids, workerStarts } from './workers-support.js';

let env: TestEnv;
let viewer: { secret: string; id: string };
let holding: ReturnType<typeof holdingUpstream>;

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ workers: 2, shutdown: { drainTimeout: '15s' } });
  viewer = await env.token('svc', { roles: ['viewer'] });
  holding = holdingUpstream(env);
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

const call = (proxy: ChildProxy, path: string) => request({ port: proxy.port, ca: env.serverCa.certPem, path, headers: { 'x-api-key': viewer.secret } });

/** `n` requests, each on a new connection (so both workers get some); their statuses and who served them. */
async function spread(proxy: ChildProxy, tag: string, n: number): Promise<{ statuses: number[]; workers: Set<unknown> }> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await call(proxy, `/api/items/${tag}-${i}`)).status);
  await eventually(() => requestLines(env.auditFile, `/api/items/${tag}-`).length === n, 3_000);
  return { statuses, workers: new Set(requestLines(env.auditFile, `/api/items/${tag}-`).map((l) => l.worker)) };
}

const metric = async (proxy: ChildProxy, name: string) => sample((await adminGet(proxy.adminPort, '/metrics')).body, name);

describe('SIGHUP', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('reloads every worker: a scope change the file watchers cannot see applies on both', async () => {
    // keygate.yaml is a link into another folder: an edit there names nothing in the folder
    // the workers watch, so only SIGHUP can apply it.
    const managed = join(env.dir, 'managed');
    mkdirSync(managed);
    const text = readFileSync(env.configFile, 'utf8');
    writeAtomic(join(managed, 'keygate.yaml'), text);
    symlinkSync(join('managed', 'keygate.yaml'), join(env.dir, 'keygate.yaml.link'));
    renameSync(join(env.dir, 'keygate.yaml.link'), env.configFile);
    const proxy = await env.startChild();
    try {
      const before = await spread(proxy, 'hup-before', 8);
      expect(before.statuses.every((s) => s === 200)).toBe(true);
      const reports = async (tag: string) => {
        const statuses: number[] = [];
        for (let i = 0; i < 8; i++) statuses.push((await call(proxy, `/api/reports/${tag}-${i}`)).status);
        await eventually(() => requestLines(env.auditFile, `/api/reports/${tag}-`).length === 8, 3_000);
        return { statuses, workers: new Set(requestLines(env.auditFile, `/api/reports/${tag}-`).map((l) => l.worker)) };
      };
      const denied = await reports('denied');
      expect(denied.statuses.every((s) => s === 403)).toBe(true);
      expect(denied.workers).toEqual(new Set([1, 2]));

      writeAtomic(join(managed, 'keygate.yaml'), text.replace(/viewer:\n(\s+)- items:read\n/, 'viewer:\n$1- items:read\n$1- reports:read\n'));
      expect(readFileSync(env.configFile, 'utf8')).toMatch(/- reports:read\n/);
      // Unseen by the watchers: still refused on both, a moment later.
      await new Promise((r) => setTimeout(r, 300));
      const still = await reports('still');
      expect(still.statuses.every((s) => s === 403)).toBe(true);

      proxy.child.kill('SIGHUP');
      const reloadedBy = () => new Set(readJsonLines(env.auditFile).filter((a) => a.event === 'config.reloaded' && a.trigger === 'SIGHUP').map((a) => a.worker));
      await eventually(() => reloadedBy().size === 2, 5_000);
      expect(reloadedBy()).toEqual(new Set([1, 2]));
      const allowed = await reports('allowed');
      expect(allowed.statuses.every((s) => s === 200)).toBe(true);
      expect(allowed.workers).toEqual(new Set([1, 2]));
      expect(proxy.child.exitCode).toBeNull();
    } finally {
      await proxy.stop('SIGTERM');
      writeAtomic(env.configFile, readFileSync(join(managed, 'keygate.yaml'), 'utf8'));
    }
  });
});

describe('a worker killed with SIGKILL', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('is replaced, logged and counted, while the other keeps serving', async () => {
    const proxy = await env.startChild();
    try {
      const first = workerPids(proxy);
      const victim = first.get(2)!;
      process.kill(victim, 'SIGKILL');
      await eventually(() => /"msg":"worker exited unexpectedly; starting a replacement"/.test(proxy.stderr()), 5_000);
      expect(proxy.stderr()).toMatch(new RegExp(`"worker":2,"pid":${victim},"code":null,"signal":"SIGKILL"`));
      // Meanwhile every request is answered, by whichever worker is there.
      const during = await spread(proxy, 'during', 12);
      expect(during.statuses.every((s) => s === 200)).toBe(true);

      await eventually(() => workerStarts(proxy).some((s) => s.msg === 'worker replaced' && s.worker === 2), 10_000);
      const replacement = workerPids(proxy).get(2)!;
      expect(replacement).not.toBe(victim);
      expect(isAlive(victim)).toBe(false);
      expect(isAlive(replacement)).toBe(true);
      await eventually(async () => (await adminGet(proxy.adminPort, '/readyz')).status === 200, 5_000);
      expect(await metric(proxy, 'keygate_worker_restarts_total')).toBe(1);
      expect(await metric(proxy, 'keygate_workers_ready')).toBe(2);
      const after = await spread(proxy, 'after', 12);
      expect(after.statuses.every((s) => s === 200)).toBe(true);
      expect(after.workers).toEqual(new Set([1, 2]));

      // The admin worker too: its replacement binds the same admin port (the config says 0).
      const adminWorker = workerPids(proxy).get(1)!;
      process.kill(adminWorker, 'SIGKILL');
      await eventually(() => workerStarts(proxy).some((s) => s.msg === 'worker replaced' && s.worker === 1), 10_000);
      await eventually(async () => (await adminGet(proxy.adminPort, '/readyz').catch(() => ({ status: 0 }))).status === 200, 5_000);
      expect(await metric(proxy, 'keygate_worker_restarts_total')).toBe(2);
      expect((await call(proxy, '/api/items/1')).status).toBe(200);
    } finally {
      expect(await proxy.stop('SIGTERM')).toBe(0);
    }
  });
});

describe('SIGTERM', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('drains every worker: readiness 503, the request in flight finishes, new connections refused, exit 0', async () => {
    const held = holding.expect();
    const proxy = await env.startChild();
    const pids = [...workerPids(proxy).values()];
    expect(pids).toHaveLength(2);
    expect((await adminGet(proxy.adminPort, '/readyz')).status).toBe(200);
    const inflight = request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/hold', headers: { 'x-api-key': viewer.secret }, timeoutMs: 20_000 });
    await within(held.arrived.promise, 5_000, 'the held request reached the upstream');

    const exited = proxy.stop('SIGTERM', 20_000);
    await eventually(async () => (await adminGet(proxy.adminPort, '/readyz')).status === 503, 3_000);
    expect((await adminGet(proxy.adminPort, '/healthz')).status).toBe(200);
    // Every worker closed its listeners: the shared port refuses new connections.
    await eventually(
      () =>
        request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/1', headers: { 'x-api-key': viewer.secret }, timeoutMs: 3_000 }).then(
          () => false,
          (err: Error) => /ECONNREFUSED/.test(err.message),
        ),
      5_000,
    );
    expect(proxy.child.exitCode).toBeNull();

    held.res!.writeHead(200, { 'content-type': 'text/plain', 'content-length': '8' }).end('finished');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.body).toBe('finished');
    expect(await within(exited, 20_000, 'exit after the drain')).toBe(0);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(proxy.stderr()).toMatch(/"role":"supervisor".*"msg":"stopped"/);
    // The held request's line made it through the relay before the worker ended.
    expect(requestLines(env.auditFile, '/api/items/hold').some((a) => a.status === 200 && (a.worker === 1 || a.worker === 2))).toBe(true);
  });
});

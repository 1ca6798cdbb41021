// Time under a running keygate: a token that expires, a rotation's overlap that ends, an
// account end date and a binding end date that pass, the admin API's view of an expired token,
// and rate-limit buckets that refill. Each is judged at the moment the test names, by moving
// the clock, never by sleeping through it.
//
// Why in-process: the one thing the built binary cannot take is an injected clock, and a test
// that waits for real expiry is slow and races a loaded machine at the very edge it checks.
// Everything else here is the real thing: the store is changed with the CLI (a child), the
// proxy is reached over TLS, the admin API over HTTP, the answers and the metrics read as a
// client reads them. The same transitions against the binary, without the clock, are in
// lifecycle-transitions.test.ts, token-states.test.ts and admin-api.test.ts.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnv, eventually, request, type InProcessProxy, type TestEnv } from '../helpers/harness.js';
import { mintClient } from '../helpers/pki.js';
import { bind, code, mtls, ops, seed } from './mtls-support.js';
import { SETUP_TIMEOUT_MS, adminCall, sample, seedToken } from './support.js';

// Steps run CLI children (a node start-up each): allow for a busy machine.
vi.setConfig({ testTimeout: 60_000 });

const DAY = 86_400_000;
let env: TestEnv;
let proxy: InProcessProxy;
let admin: { secret: string; id: string };
/**
 * The proxy's clock: the real one, or stopped at the moment a test sets, so that "a second
 * before" stays a second before however long the machine takes to answer.
 */
let stopped: number | undefined;
const clockAt = (atMs: number) => (stopped = atMs);
const realClock = () => (stopped = undefined);

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({
    policies: { default: { rate: '1000/s', burst: 1000 }, small: { rate: '3/m', burst: 3 } },
    // Refused requests below spend this budget too: room for them, and for its own test.
    authFailures: { rate: '1/m', burst: 10 },
  });
  await seed(env, (data, ctx) => {
    ops.account(data, ctx, { name: 'short' });
    ops.account(data, ctx, { name: 'reader' });
    ops.account(data, ctx, { name: 'by-cn' });
    ops.bind(data, ctx, { account: 'by-cn', match: 'cn', value: 'reporting-job' });
  });
  admin = await seedToken(env, 'ops', { roles: ['admin'] });
  proxy = await env.startInProcess({ now: () => stopped ?? Date.now() });
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

async function call(secret: string | undefined, path = '/api/items/1') {
  const before = env.upstream.received.length;
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path, headers: secret ? { 'x-api-key': secret } : {} });
  return { res, reached: env.upstream.received.length - before, code: res.status >= 400 ? (res.json().code as string) : undefined };
}

/** A token written into the store, once the proxy has loaded it (asked through its credential index, spending no budget). */
async function tokenFor(account: string, opts: Parameters<TestEnv['token']>[1] = {}) {
  const t = await seedToken(env, account, { roles: ['viewer'], ...opts });
  await eventually(() => proxy.instance.index().byId.has(t.id), 3_000);
  return t;
}

async function expiresAt(id: string): Promise<number> {
  const r = await env.cli(['token', 'show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return Date.parse(JSON.parse(r.stdout).expiresAt as string);
}

const metric = async (name: string, labels: Record<string, string>) => sample(await proxy.registry.metrics(), name, labels);
const api = (method: string, path: string, body?: unknown) => adminCall(proxy.adminPort, admin.secret, method, path, body);

describe('a token that expires', () => {
  it('works until its expiry, then is refused with 401 KG_ERR_TOKEN_EXPIRED; a live token of the account keeps working', async () => {
    const expiring = await tokenFor('svc-expire', { expires: '1h' });
    const live = await tokenFor('svc-expire');
    const end = await expiresAt(expiring.id);
    expect(end - Date.now()).toBeLessThanOrEqual(3_600_000);
    try {
      expect((await call(expiring.secret)).res.status).toBe(200);
      clockAt(end - 60_000); // a minute before
      expect((await call(expiring.secret)).res.status).toBe(200);
      clockAt(end + 1);
      const before = await metric('keygate_auth_failures_total', { reason: 'token_expired' });
      const { res, reached } = await call(expiring.secret);
      expect(res.status).toBe(401);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate", error="invalid_token"');
      const body = res.json<{ code: string; detail: string }>();
      expect(body.code).toBe('KG_ERR_TOKEN_EXPIRED');
      expect(body.detail).not.toContain(expiring.secret);
      expect(reached).toBe(0);
      expect(await metric('keygate_auth_failures_total', { reason: 'token_expired' })).toBe(before + 1);
      const other = await call(live.secret);
      expect(other.res.status).toBe(200);
      expect(other.reached).toBe(1);
    } finally {
      realClock();
    }
  });

  it('rotate: both tokens work until the overlap ends, then only the new one', async () => {
    const old = await tokenFor('rotator', { label: 'svc' });
    const r = await env.cli(['token', 'rotate', old.id, '--overlap', '5s', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const successor = JSON.parse(r.stdout) as { token: string; id: string; replacedExpiresAt: string };
    await eventually(() => proxy.instance.index().byId.has(successor.id), 3_000);
    const end = Date.parse(successor.replacedExpiresAt);
    expect(end - Date.now()).toBeLessThanOrEqual(5_000);
    try {
      expect((await call(old.secret)).res.status).toBe(200);
      expect((await call(successor.token)).res.status).toBe(200);
      clockAt(end - 1_000);
      expect((await call(old.secret)).res.status).toBe(200);
      clockAt(end + 1);
      expect(await call(old.secret)).toMatchObject({ code: 'KG_ERR_TOKEN_EXPIRED', reached: 0 });
      expect((await call(old.secret)).res.status).toBe(401);
      expect((await call(successor.token)).res.status).toBe(200);
    } finally {
      realClock();
    }
  });
});

describe('an account end date that passes', () => {
  it('admits the account until 23:59:59 UTC of its end date, and refuses it from then on with 401 KG_ERR_ACCOUNT_ENDED', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const created = await env.cli(['account', 'create', '--name', 'ending', '--role', 'viewer', '--end-date', today]);
    expect(created.code, created.stderr).toBe(0);
    const t = await tokenFor('ending');
    const neighbour = await tokenFor('not-ending');
    const end = Date.parse(`${today}T23:59:59.999Z`);
    try {
      clockAt(end - 60_000);
      expect((await call(t.secret)).res.status).toBe(200);
      clockAt(end + 1);
      const before = await metric('keygate_auth_failures_total', { reason: 'account_ended' });
      const refused = await call(t.secret);
      expect(refused).toMatchObject({ code: 'KG_ERR_ACCOUNT_ENDED', reached: 0 });
      expect(refused.res.status).toBe(401);
      expect(await metric('keygate_auth_failures_total', { reason: 'account_ended' })).toBe(before + 1);
      expect((await call(neighbour.secret)).res.status).toBe(200);
    } finally {
      realClock();
    }
  });
});

describe('a certificate binding end date that passes', () => {
  it('refuses with 401 KG_ERR_CERT_BINDING_ENDED, without falling back to a CN binding of the same certificate', async () => {
    // CN=reporting-job is also bound (to by-cn); the ended fingerprint binding still decides.
    const cert = await mintClient(env.clientCa.authority, { commonName: 'reporting-job', days: 10 });
    const callCert = async () => {
      const before = env.upstream.received.length;
      const res = await mtls(env, { port: proxy.port, cert });
      const account = env.upstream.received.length > before ? env.upstream.received.at(-1)!.headers['x-keygate-account'] : undefined;
      return { status: res.status, account, code: res.status === 200 ? undefined : code(res) };
    };
    expect(await callCert()).toMatchObject({ status: 200, account: 'by-cn' });
    await bind(env, 'short', 'fingerprint', cert.fingerprint, ['--end-date', '2d']);
    let r = await callCert();
    await eventually(async () => (r = await callCert()).account === 'short', 2_000).catch(() => undefined);
    expect(r).toMatchObject({ status: 200, account: 'short' });
    clockAt(Date.now() + 3 * DAY);
    try {
      expect(await callCert()).toMatchObject({ status: 401, code: 'KG_ERR_CERT_BINDING_ENDED' });
    } finally {
      realClock();
    }
  });
});

describe('the admin API on the same clock', () => {
  const publicCall = (secret: string) => call(secret, '/api/items');
  const loaded = (id: string) => eventually(() => proxy.instance.index().byId.has(id), 3_000);

  it('refuses to restore a token once it has expired (409), and restores it before', async () => {
    const made = await api('POST', '/admin/v1/tokens', { account: 'reader', expires: '1h' });
    expect(made.status).toBe(201);
    const end = Date.parse(made.body.expiresAt as string);
    expect((await api('POST', `/admin/v1/tokens/${made.body.id}/revoke`)).status).toBe(200);
    try {
      clockAt(end - 1_000);
      expect((await api('POST', `/admin/v1/tokens/${made.body.id}/restore`)).status).toBe(200);
      expect((await api('POST', `/admin/v1/tokens/${made.body.id}/revoke`)).status).toBe(200);
      clockAt(end + 1);
      const restore = await api('POST', `/admin/v1/tokens/${made.body.id}/restore`);
      expect(restore.status).toBe(409);
      expect(restore.body.detail).toContain('an expired token cannot be restored');
    } finally {
      realClock();
    }
  });

  it('rotates with an overlap: both work until it ends, then only the new one', async () => {
    const made = await api('POST', '/admin/v1/tokens', { account: 'reader', label: 'api token', scopes: ['items:read'] });
    expect(made.status).toBe(201);
    const t = made.body as { token: string; id: string };
    const r = await api('POST', `/admin/v1/tokens/${t.id}/rotate`, { overlap: '2s' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ replaces: t.id, rotatedFrom: t.id, label: 'api token', scopes: ['items:read'], account: 'reader' });
    const end = Date.parse(r.body.replacedExpiresAt as string);
    expect(end - Date.now()).toBeLessThanOrEqual(2_000);
    await loaded(r.body.id as string);
    try {
      expect((await publicCall(r.body.token as string)).res.status).toBe(200);
      expect((await publicCall(t.token)).res.status).toBe(200);
      clockAt(end - 1_000);
      expect((await publicCall(t.token)).res.status).toBe(200);
      clockAt(end + 1);
      expect(await publicCall(t.token)).toMatchObject({ code: 'KG_ERR_TOKEN_EXPIRED', reached: 0 });
      expect((await publicCall(r.body.token as string)).res.status).toBe(200);
      expect((await api('GET', `/admin/v1/tokens/${t.id}`)).body).toMatchObject({ status: 'expired', rotatedTo: r.body.id });
      expect((await api('POST', `/admin/v1/tokens/${t.id}/rotate`, {})).status).toBe(409);
      expect(proxy.audit.entries.find((e) => e.event === 'token.rotated' && e.target === t.id)).toMatchObject({ successor: r.body.id });
    } finally {
      realClock();
    }
  });
});

describe('rate-limit buckets refill with time', () => {
  it('a credential bucket: empty after the burst, one token back after Retry-After, full again after a minute', async () => {
    const t = await tokenFor('svc-small', { policy: 'small' });
    const start = Date.now();
    try {
      clockAt(start);
      for (const remaining of ['2', '1', '0']) expect((await call(t.secret)).res.headers['ratelimit-remaining']).toBe(remaining);
      const limited = await call(t.secret);
      expect(limited.res.status).toBe(429);
      expect(limited.reached).toBe(0);
      // 3 per minute, the clock standing still since the bucket was full: one token in 20 s.
      expect(limited.res.headers['retry-after']).toBe('20');
      clockAt(start + 19_999);
      expect((await call(t.secret)).res.status).toBe(429);
      clockAt(start + 20_000);
      const refilled = await call(t.secret);
      expect(refilled.res.status).toBe(200);
      expect(refilled.res.headers['ratelimit-remaining']).toBe('0');
      expect((await call(t.secret)).res.status).toBe(429);
      // A minute later the whole burst is back, and no more than that.
      clockAt(start + 80_000);
      for (let i = 0; i < 3; i++) expect((await call(t.secret)).res.status).toBe(200);
      expect((await call(t.secret)).res.status).toBe(429);
    } finally {
      realClock();
    }
  });

  it('the failed-authentication budget per client IP refills too, while a valid token is never held back', async () => {
    const valid = await tokenFor('svc-valid');
    // Days after every moment earlier tests set: the address's budget is full again (10).
    const start = Date.now() + 10 * DAY;
    try {
      clockAt(start);
      for (let i = 0; i < 10; i++) expect(await call(undefined)).toMatchObject({ code: 'KG_ERR_CREDENTIAL_MISSING' });
      const limited = await call(undefined);
      expect(limited).toMatchObject({ code: 'KG_ERR_AUTH_RATE_LIMITED', reached: 0 });
      expect(limited.res.headers['retry-after']).toBe('60');
      expect((await call(valid.secret)).res.status).toBe(200);
      clockAt(start + 59_999);
      expect(await call(undefined)).toMatchObject({ code: 'KG_ERR_AUTH_RATE_LIMITED' });
      clockAt(start + 60_000); // 1 per minute
      expect(await call(undefined)).toMatchObject({ code: 'KG_ERR_CREDENTIAL_MISSING' });
      expect(await call(undefined)).toMatchObject({ code: 'KG_ERR_AUTH_RATE_LIMITED' });
    } finally {
      realClock();
    }
  });
});

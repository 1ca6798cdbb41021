// Every lifecycle transition, made with the CLI while the real keygate binary serves traffic,
// takes effect within one second of the command returning: revoke and restore, rotation with
// both tokens working during the overlap, disable and enable, an end date in the past, a
// token's own scopes narrower than its account's, delete. Expiry and the end of an overlap
// are in lifecycle-clock.test.ts, where the clock is moved instead of waited for.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { awaitAudit } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
const secrets: string[] = [];

beforeAll(async () => {
  env = await createTestEnv();
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

async function call(secret: string, method = 'GET', path = '/api/items'): Promise<{ status: number; code?: string }> {
  if (!secrets.includes(secret)) secrets.push(secret);
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, method, path, headers: { 'x-api-key': secret } });
  return { status: res.status, code: res.status >= 400 ? (res.json().code as string) : undefined };
}

/** Polls until the proxy answers `status` (and `code`), at most one second. */
async function within1s(secret: string, status: number, code?: string, method?: string, path?: string): Promise<void> {
  let last: { status: number; code?: string } | undefined;
  try {
    await eventually(async () => {
      last = await call(secret, method, path);
      return last.status === status && (code === undefined || last.code === code);
    }, 1_000);
  } catch {
    throw new Error(`expected ${status} ${code ?? ''} within 1 s, last answer ${last?.status} ${last?.code ?? ''}`);
  }
}

async function cli(...args: string[]) {
  const r = await env.cli(args);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

const day = (offsetDays: number) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);

// Each step runs a CLI child (a node start-up each); on a busy machine a test takes a while.
describe('lifecycle against a running proxy', { timeout: 60_000 }, () => {
  it('revoke refuses the token within 1 s; restore admits it again within 1 s', async () => {
    const t = await env.token('revoker', { roles: ['viewer'] });
    await within1s(t.secret, 200);
    await cli('token', 'revoke', t.id, '--reason', 'suspected leak');
    await within1s(t.secret, 401, 'KG_ERR_TOKEN_REVOKED');
    await cli('token', 'restore', t.id);
    await within1s(t.secret, 200);
  });

  it('rotate: both tokens work during the overlap, which ends when --overlap says', async () => {
    const old = await env.token('rotator', { roles: ['viewer'], label: 'svc' });
    await within1s(old.secret, 200);
    const r = await cli('token', 'rotate', old.id, '--overlap', '1h', '--json');
    const successor = JSON.parse(r.stdout) as { token: string; id: string; replacedExpiresAt: string };
    expect((await call(old.secret)).status).toBe(200);
    await within1s(successor.token, 200);
    expect((await call(old.secret)).status).toBe(200);
    const wait = Date.parse(successor.replacedExpiresAt) - Date.now();
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(3_600_000);
    const shown = JSON.parse((await cli('token', 'show', old.id, '--json')).stdout);
    expect(shown).toMatchObject({ expiresAt: successor.replacedExpiresAt, rotatedTo: successor.id });
  });

  it('disable refuses every credential of the account; enable admits them again', async () => {
    const a = await env.token('toggler', { roles: ['viewer'] });
    const b = await env.token('toggler');
    await within1s(a.secret, 200);
    await cli('account', 'disable', 'toggler');
    await within1s(a.secret, 401, 'KG_ERR_ACCOUNT_DISABLED');
    await within1s(b.secret, 401, 'KG_ERR_ACCOUNT_DISABLED');
    await cli('account', 'enable', 'toggler');
    await within1s(a.secret, 200);
    await within1s(b.secret, 200);
  });

  it('an end date in the past refuses the account; today (until 23:59:59 UTC) still admits it', async () => {
    const t = await env.token('ender', { roles: ['viewer'] });
    await within1s(t.secret, 200);
    await cli('account', 'update', 'ender', '--end-date', day(-1));
    await within1s(t.secret, 401, 'KG_ERR_ACCOUNT_ENDED');
    await cli('account', 'update', 'ender', '--end-date', day(0));
    await within1s(t.secret, 200);
    await cli('account', 'update', 'ender', '--end-date', 'none');
    await within1s(t.secret, 200);
  });

  it("a token's own scopes are enforced: narrower than the account's, never wider", async () => {
    const narrow = await env.token('scoper', { roles: ['editor'], tokenScopes: ['items:read'] });
    const full = await env.token('scoper');
    await within1s(narrow.secret, 200, undefined, 'GET', '/api/items/1');
    const denied = await request({ port: proxy.port, ca: env.serverCa.certPem, method: 'POST', path: '/api/items', headers: { 'x-api-key': narrow.secret } });
    expect(denied.status).toBe(403);
    expect(denied.json().detail).toContain('items:write');
    // Created after `narrow`: like every change, it is in force within a second of the command.
    await within1s(full.secret, 200, undefined, 'POST', '/api/items');

    const wider = await env.cli(['token', 'create', '--account', 'scoper', '--scope', 'reports:read']);
    expect(wider.code).toBe(1);
    expect(wider.stderr).toContain('does not have reports:read');
  });

  it('delete makes a token unknown; account delete --force removes the account with its tokens', async () => {
    const t = await env.token('remover', { roles: ['viewer'] });
    const other = await env.token('remover');
    await within1s(t.secret, 200);
    await cli('token', 'delete', t.id);
    await within1s(t.secret, 401, 'KG_ERR_TOKEN_UNKNOWN');
    await within1s(other.secret, 200);
    await cli('account', 'delete', 'remover', '--force');
    await within1s(other.secret, 401, 'KG_ERR_TOKEN_UNKNOWN');
  });

  it('the real binary serves the admin API on its admin listener, and a change made there applies within 1 s', async () => {
    const admin = await env.token('root', { roles: ['admin'] });
    secrets.push(admin.secret);
    const t = await env.token('via-admin', { roles: ['viewer'] });
    await within1s(t.secret, 200);
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/admin/v1/tokens/${t.id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'admin API' }),
    });
    expect(res.status).toBe(200);
    await within1s(t.secret, 401, 'KG_ERR_TOKEN_REVOKED');
  });

  it('no secret used above appears in the proxy output or the audit log', async () => {
    expect(secrets.length).toBeGreaterThan(8);
    // The sink writes in order: once a request sent now is in the file, so is everything before.
    const marker = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/healthz', headers: { 'x-request-id': 'secret-scan-marker' } });
    expect(marker.status).toBe(200);
    await awaitAudit(env.auditFile, (a) => a.requestId === 'secret-scan-marker');
    const seen = proxy.stdout() + proxy.stderr() + readFileSync(env.auditFile, 'utf8');
    expect(seen).toContain('"event":"request"');
    for (const s of secrets) expect(seen).not.toContain(s);
  });
});

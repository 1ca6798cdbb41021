// The admin API on the admin listener of a running proxy: who may call it (401 without a
// usable credential, 403 without keygate:admin), that the public listener never serves it,
// accounts / tokens / certificate bindings end to end (each change enforced by the proxy
// within 1 s), strict bodies and answers as problem+json, and one audit line per call with
// the admin's identity and never a secret. The proxy is the built binary; what the admin API
// does once a token's time is up (restore refused, an overlap that ends) is in
// lifecycle-clock.test.ts, where the clock is moved instead of waited for.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintToken } from '../../src/store/token-format.js';
import { createTestEnv, eventually, MTLS_HOST, readJsonLines, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintClient } from '../helpers/pki.js';
import { createToken, revokeToken } from '../../src/store/operations.js';
import { seed } from './mtls-support.js';
import { awaitAudit, seedToken } from './support.js';

// Steps run CLI children (a node start-up each): allow for a busy machine.
vi.setConfig({ testTimeout: 60_000 });

let env: TestEnv;
let proxy: ChildProxy;
let admin: { secret: string; id: string };
let viewer: { secret: string; id: string };
/** A token of reader that expired yesterday and was revoked before that. */
let expiredId: string;
/** A token of reader that expired yesterday. */
let lapsedId: string;
const secrets: string[] = [];

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ scopes: { 'mirror:read': ['GET /admin/**'] } });
  admin = await seedToken(env, 'ops', { roles: ['admin'] });
  viewer = await seedToken(env, 'reader', { roles: ['viewer'] });
  secrets.push(admin.secret, viewer.secret);
  // Written straight into the store, as if made two days ago: no test waits for an expiry.
  await seed(env, (data, ctx) => {
    const past = { ...ctx, now: new Date(Date.now() - 2 * 86_400_000) };
    const made = createToken(data, { account: 'reader', label: 'expired', expiresAt: new Date(Date.now() - 86_400_000).toISOString() }, past);
    revokeToken(data, made.record.id, 'left over', past);
    expiredId = made.record.id;
    const lapsed = createToken(data, { account: 'reader', label: 'lapsed', expiresAt: new Date(Date.now() - 86_400_000).toISOString() }, past);
    lapsedId = lapsed.record.id;
    secrets.push(made.secret, lapsed.secret);
  });
  proxy = await env.startChild();
}, 120_000); // several CLI children: slow on a busy machine
afterAll(() => env.cleanup());

interface ApiResponse {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

async function api(method: string, path: string, opts: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
  const token = opts.token === undefined ? admin.secret : opts.token;
  const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers };
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}${path}`, { method, headers, body: opts.body !== undefined ? JSON.stringify(opts.body) : opts.raw });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, text };
}

const publicCall = (secret: string, path = '/api/items', method = 'GET') => request({ port: proxy.port, ca: env.serverCa.certPem, method, path, headers: { 'x-api-key': secret } });

async function within1s(secret: string, status: number, code?: string): Promise<void> {
  await eventually(async () => {
    const res = await publicCall(secret);
    return res.status === status && (code === undefined || res.json().code === code);
  }, 1_000);
}

/** The audit lines of `event` that `match` accepts, once at least one is in the file. */
const audited = (event: string, match: (e: Record<string, unknown>) => boolean = () => true) => awaitAudit(env.auditFile, (e) => e.event === event && match(e));

describe('admin API authentication', () => {
  it('401 without a credential, as problem+json with a challenge', async () => {
    const r = await api('GET', '/admin/v1/accounts', { token: null });
    expect(r.status).toBe(401);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="keygate-admin"');
    expect(r.body).toMatchObject({ status: 401, code: 'KG_ERR_CREDENTIAL_MISSING' });
    expect(r.body.requestId).toBe(r.headers.get('x-request-id'));
  });

  it.each([
    ['a malformed token', 'kg_nope', 'KG_ERR_TOKEN_MALFORMED'],
    ['an unknown token', mintToken(null), 'KG_ERR_TOKEN_UNKNOWN'],
  ])('401 with %s', async (_what, token, code) => {
    const r = await api('GET', '/admin/v1/accounts', { token });
    expect(r.status).toBe(401);
    expect(r.body.code).toBe(code);
  });

  it('403 for a valid credential without keygate:admin', async () => {
    const r = await api('GET', '/admin/v1/accounts', { token: viewer.secret });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: 'KG_ERR_SCOPE_DENIED' });
    expect(r.body.detail).toContain('needs the keygate:admin scope');
    expect(r.body.detail).toContain('"reader"');
  });

  it('admits an admin token in Authorization: Bearer or x-api-key', async () => {
    expect((await api('GET', '/admin/v1/accounts')).status).toBe(200);
    const r = await api('GET', '/admin/v1/accounts', { token: null, headers: { 'x-api-key': admin.secret } });
    expect(r.status).toBe(200);
    expect(r.body.accounts.map((a: { name: string }) => a.name)).toEqual(expect.arrayContaining(['ops', 'reader']));
  });

  it("403 for a token of an admin account whose own scopes leave keygate:admin out", async () => {
    await env.cli(['account', 'update', 'ops', '--role', 'admin,viewer']);
    const narrow = await env.token('ops', { tokenScopes: ['items:read'] });
    await eventually(async () => (await api('GET', '/admin/v1/accounts', { token: narrow.secret })).status === 403, 1_000);
  });

  it('refuses an admin token once it is revoked, and an admin account once it is disabled (within 1 s)', async () => {
    const spare = await env.token('ops');
    const other = await env.token('ops2', { roles: ['admin'] });
    secrets.push(spare.secret, other.secret);
    await eventually(async () => (await api('GET', '/admin/v1/accounts', { token: spare.secret })).status === 200, 1_000);
    expect((await api('POST', `/admin/v1/tokens/${spare.id}/revoke`, { body: {} })).status).toBe(200);
    await eventually(async () => (await api('GET', '/admin/v1/accounts', { token: spare.secret })).body?.code === 'KG_ERR_TOKEN_REVOKED', 1_000);

    await eventually(async () => (await api('GET', '/admin/v1/accounts', { token: other.secret })).status === 200, 1_000);
    expect((await api('POST', '/admin/v1/accounts/ops2/disable')).status).toBe(200);
    await eventually(async () => (await api('GET', '/admin/v1/accounts', { token: other.secret })).body?.code === 'KG_ERR_ACCOUNT_DISABLED', 1_000);
  });

  it('audits refused callers as admin.denied', async () => {
    expect(await audited('admin.denied', (e) => e.actor === 'anonymous' && e.status === 401 && e.reason === 'KG_ERR_CREDENTIAL_MISSING')).not.toHaveLength(0);
    expect(await audited('admin.denied', (e) => e.actor === 'admin:reader' && e.status === 403 && e.credential === viewer.id)).not.toHaveLength(0);
  });
});

describe('the public listener never serves the admin API', () => {
  it('an admin token on the public port is just a token without a matching scope: 403, nothing forwarded', async () => {
    const before = env.upstream.received.length;
    const res = await publicCall(admin.secret, '/admin/v1/accounts');
    expect(res.status).toBe(403);
    expect(res.json().code).toBe('KG_ERR_SCOPE_DENIED');
    expect(env.upstream.received.length).toBe(before);
  });

  it('a token whose scope allows /admin/** is proxied to the upstream like any path', async () => {
    const mirror = await env.token('mirror', { scopes: ['mirror:read'] });
    await eventually(async () => (await publicCall(mirror.secret, '/api/items')).status === 403, 1_000); // known to the proxy
    const before = env.upstream.received.length;
    const res = await publicCall(mirror.secret, '/admin/v1/accounts');
    expect(res.status).toBe(200);
    expect(env.upstream.received.length).toBe(before + 1);
    expect(env.upstream.received[before]!.url).toBe('/admin/v1/accounts');
    expect(res.json()).toMatchObject({ method: 'GET', url: '/admin/v1/accounts' }); // the echo upstream's answer
    expect(res.json().accounts).toBeUndefined();
  });
});

describe('accounts over the admin API', () => {
  it('creates, reads, updates, disables, enables and deletes, each enforced by the proxy within 1 s', async () => {
    const created = await api('POST', '/admin/v1/accounts', { body: { name: 'api made', owner: 'owner@example.com', roles: ['viewer'], endDate: '2031-06-30' } });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/admin/v1/accounts/api%20made');
    expect(created.body).toMatchObject({ name: 'api made', owner: 'owner@example.com', roles: ['viewer'], endDate: '2031-06-30' });

    const tok = await api('POST', '/admin/v1/tokens', { body: { account: 'api made', label: 'from the API', expires: '30d' } });
    expect(tok.status).toBe(201);
    secrets.push(tok.body.token);
    await within1s(tok.body.token, 200);

    const got = await api('GET', '/admin/v1/accounts/api%20made');
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ name: 'api made', status: 'active', effectiveScopes: ['items:read'], activeTokens: 1 });
    expect(got.body.tokens.map((t: { id: string }) => t.id)).toEqual([tok.body.id]);

    const patched = await api('PATCH', '/admin/v1/accounts/api%20made', { body: { description: 'made by a test', endDate: null } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ description: 'made by a test', endDate: null });

    expect((await api('POST', '/admin/v1/accounts/api%20made/disable')).body.status).toBe('disabled');
    await within1s(tok.body.token, 401, 'KG_ERR_ACCOUNT_DISABLED');
    expect((await api('POST', '/admin/v1/accounts/api%20made/enable')).body.status).toBe('active');
    await within1s(tok.body.token, 200);

    const refused = await api('DELETE', '/admin/v1/accounts/api%20made');
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain('still holds 1 active credential(s)');
    const deleted = await api('DELETE', '/admin/v1/accounts/api%20made?force=true');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ deleted: 'api made', tokens: [tok.body.id] });
    await within1s(tok.body.token, 401, 'KG_ERR_TOKEN_UNKNOWN');
    expect((await api('GET', '/admin/v1/accounts/api%20made')).status).toBe(404);
  });

  it('refuses bad input with 4xx problem+json saying what is wrong', async () => {
    const badName = await api('POST', '/admin/v1/accounts', { body: { name: 'no/slash' } });
    expect(badName.status).toBe(400);
    expect(badName.body).toMatchObject({ code: 'KG_ERR_BAD_REQUEST' });
    expect(badName.body.detail).toContain('invalid account name');
    const unknownKey = await api('POST', '/admin/v1/accounts', { body: { name: 'x1', disabled: true } });
    expect(unknownKey.status).toBe(400);
    expect(unknownKey.body.detail).toContain('disabled');
    const duplicate = await api('POST', '/admin/v1/accounts', { body: { name: 'OPS' } });
    expect(duplicate.status).toBe(409);
    const emptyPatch = await api('PATCH', '/admin/v1/accounts/ops', { body: {} });
    expect(emptyPatch.status).toBe(400);
    expect(emptyPatch.body.detail).toContain('give at least one field');
    const badOwner = await api('PATCH', '/admin/v1/accounts/ops', { body: { owner: 'nobody' } });
    expect(badOwner.status).toBe(400);
    expect((await api('GET', '/admin/v1/accounts/ghost')).status).toBe(404);
  });
});

describe('tokens over the admin API', () => {
  let t: { token: string; id: string };

  it('creates a token whose secret appears once, in the response, and works at the proxy within 1 s', async () => {
    const r = await api('POST', '/admin/v1/tokens', { body: { account: 'reader', label: 'api token', scopes: ['items:read'] } });
    expect(r.status).toBe(201);
    expect(r.headers.get('location')).toBe(`/admin/v1/tokens/${r.body.id}`);
    expect(r.body).toMatchObject({ account: 'reader', label: 'api token', scopes: ['items:read'], ownScopes: true, status: 'active' });
    expect(r.body.token).toMatch(/^kg_[0-9A-Za-z]{39}$/);
    t = r.body;
    secrets.push(t.token);
    await within1s(t.token, 200);
    const [e] = await audited('token.created', (x) => x.target === t.id);
    expect(e).toMatchObject({ actor: 'admin:ops', account: 'reader', credential: admin.id, auth: 'api-key', status: 201 });
    const again = await api('GET', `/admin/v1/tokens/${t.id}`);
    expect(again.status).toBe(200);
    expect(again.text).not.toContain(t.token);
  });

  it("refuses scopes beyond the account's with a clear message", async () => {
    const r = await api('POST', '/admin/v1/tokens', { body: { account: 'reader', scopes: ['items:write'] } });
    expect(r.status).toBe(400);
    expect(r.body.detail).toBe('a token\'s scopes must be a subset of its account\'s: account "reader" does not have items:write (it has: items:read)');
  });

  it('revokes (401 within 1 s) and restores (200 within 1 s)', async () => {
    const revoked = await api('POST', `/admin/v1/tokens/${t.id}/revoke`, { body: { reason: 'found in a paste' } });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ status: 'revoked', revokeReason: 'found in a paste' });
    await within1s(t.token, 401, 'KG_ERR_TOKEN_REVOKED');
    expect((await api('POST', `/admin/v1/tokens/${t.id}/revoke`)).status).toBe(409);
    const restored = await api('POST', `/admin/v1/tokens/${t.id}/restore`);
    expect(restored.status).toBe(200);
    await within1s(t.token, 200);
    expect((await audited('token.revoked', (e) => e.target === t.id))[0]).toMatchObject({ actor: 'admin:ops', reason: 'found in a paste' });
    expect((await audited('token.restored', (e) => e.target === t.id))[0]).toMatchObject({ actor: 'admin:ops' });
  });

  it('refuses to restore an expired token (409)', async () => {
    expect((await api('GET', `/admin/v1/tokens/${expiredId}`)).body).toMatchObject({ status: 'revoked' });
    const restore = await api('POST', `/admin/v1/tokens/${expiredId}/restore`);
    expect(restore.status).toBe(409);
    expect(restore.body.detail).toContain('an expired token cannot be restored');
  });

  it('rotates with an overlap: both work while it lasts, linked and audited', async () => {
    const r = await api('POST', `/admin/v1/tokens/${t.id}/rotate`, { body: { overlap: '1h' } });
    expect(r.status).toBe(201);
    secrets.push(r.body.token);
    expect(r.body).toMatchObject({ replaces: t.id, rotatedFrom: t.id, label: 'api token', scopes: ['items:read'], account: 'reader' });
    await within1s(r.body.token, 200);
    expect((await publicCall(t.token)).status).toBe(200);
    const wait = Date.parse(r.body.replacedExpiresAt) - Date.now();
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(3_600_000);
    expect((await api('GET', `/admin/v1/tokens/${t.id}`)).body).toMatchObject({ status: 'active', rotatedTo: r.body.id });
    expect((await audited('token.rotated', (e) => e.target === t.id))[0]).toMatchObject({ successor: r.body.id });
  });

  it('lists with the CLI filters and never a secret or a hash', async () => {
    const all = await api('GET', '/admin/v1/tokens');
    expect(all.status).toBe(200);
    expect(all.body.tokens.length).toBeGreaterThan(3);
    for (const s of secrets) expect(all.text).not.toContain(s);
    expect(all.text).not.toMatch(/"hash"/);
    const reader = await api('GET', '/admin/v1/tokens?account=reader&status=expired');
    expect(reader.body.tokens.map((x: { id: string }) => x.id)).toContain(lapsedId);
    expect(reader.body.tokens.every((x: { account: string; status: string }) => x.account === 'reader' && x.status === 'expired')).toBe(true);
    const expiring = await api('GET', '/admin/v1/tokens?expiring=14d');
    expect(expiring.body.tokens.every((x: { status: string; endsAt: string | null }) => x.status === 'active' && x.endsAt !== null)).toBe(true);
    expect((await api('GET', '/admin/v1/tokens?status=bogus')).status).toBe(400);
    expect((await api('GET', '/admin/v1/tokens?stauts=active')).body.detail).toContain('unknown query parameter "stauts"');
    expect((await api('GET', '/admin/v1/tokens?account=ghost')).status).toBe(404);
  });

  it('deletes: the token is unknown to the proxy within 1 s', async () => {
    const r = await api('POST', '/admin/v1/tokens', { body: { account: 'reader' } });
    secrets.push(r.body.token);
    await within1s(r.body.token, 200);
    expect((await api('DELETE', `/admin/v1/tokens/${r.body.id}`)).status).toBe(200);
    await within1s(r.body.token, 401, 'KG_ERR_TOKEN_UNKNOWN');
    expect((await api('GET', `/admin/v1/tokens/${r.body.id}`)).status).toBe(404);
    expect((await audited('token.deleted', (e) => e.target === r.body.id))[0]).toMatchObject({ actor: 'admin:ops' });
  });
});

describe('certificate bindings over the admin API', () => {
  it('binds a PEM certificate, which then gets through the clientauth host, and unbinds it (401 within 1 s)', async () => {
    const client = await mintClient(env.clientCa.authority, { commonName: 'bound-by-api' });
    const mtls = () => request({ port: proxy.port, servername: MTLS_HOST, ca: env.serverCa.certPem, cert: client.certPem, key: client.keyPem, path: '/api/items' });
    const bound = await api('POST', '/admin/v1/certificates', { body: { account: 'reader', certificate: client.certPem, nickname: 'api bound' } });
    expect(bound.status).toBe(201);
    expect(bound.body).toMatchObject({ id: `sha256:${client.fingerprint}`, account: 'reader', match: 'fingerprint', value: client.fingerprint, nickname: 'api bound', status: 'active' });
    expect(Date.parse(bound.body.notAfter)).toBe(Math.floor(client.notAfter.getTime() / 1000) * 1000);
    await eventually(async () => (await mtls()).status === 200, 1_000);
    const before = env.upstream.received.length;
    await mtls();
    expect(env.upstream.received[before]!.headers['x-keygate-account']).toBe('reader');

    const listed = await api('GET', '/admin/v1/certificates?account=reader');
    expect(listed.body.certificates.map((c: { id: string }) => c.id)).toContain(bound.body.id);
    const got = await api('GET', `/admin/v1/certificates/${encodeURIComponent(bound.body.id)}`);
    expect(got.body.id).toBe(bound.body.id);

    expect((await api('DELETE', `/admin/v1/certificates/${bound.body.id}`)).status).toBe(200);
    await eventually(async () => {
      const res = await mtls();
      return res.status === 401 && res.json().code === 'KG_ERR_CERT_UNBOUND';
    }, 1_000);
    expect((await audited('cert.bound', (e) => e.target === bound.body.id))[0]).toMatchObject({ actor: 'admin:ops', account: 'reader' });
    expect((await audited('cert.unbound', (e) => e.target === bound.body.id))[0]).toMatchObject({ actor: 'admin:ops' });
  });

  it('binds by match and value, and refuses a body that gives both forms or neither', async () => {
    const r = await api('POST', '/admin/v1/certificates', { body: { account: 'reader', match: 'uri', value: 'spiffe://example.org/ns/prod/sa/*', endDate: '2031-01-31' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ match: 'uri', endDate: '2031-01-31T23:59:59.999Z' });
    expect(r.body.id).toMatch(/^crt_/);
    const both = await api('POST', '/admin/v1/certificates', { body: { account: 'reader', match: 'cn', value: 'x', certificate: 'pem' } });
    expect(both.status).toBe(400);
    const neither = await api('POST', '/admin/v1/certificates', { body: { account: 'reader' } });
    expect(neither.status).toBe(400);
    const notPem = await api('POST', '/admin/v1/certificates', { body: { account: 'reader', certificate: 'not a certificate' } });
    expect(notPem.status).toBe(400);
    expect(notPem.body.detail).toContain('not a PEM X.509 certificate');
  });
});

describe('admin API request hygiene', () => {
  it('bounds the body (413), wants JSON (400), knows its resources (404) and methods (405)', async () => {
    const big = await api('POST', '/admin/v1/accounts', { raw: JSON.stringify({ name: 'big', description: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('KG_ERR_BODY_TOO_LARGE');
    const notJson = await api('POST', '/admin/v1/accounts', { raw: '{name: nope', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect(notJson.body.detail).toBe('the request body is not valid JSON');
    const wrongType = await api('POST', '/admin/v1/accounts', { raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.detail).toContain('content-type: application/json');
    const missing = await api('GET', '/admin/v1/widgets');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toBe('application/problem+json');
    const query = await api('POST', '/admin/v1/tokens?account=reader', { body: { account: 'reader' } });
    expect(query.status).toBe(400);
    expect(query.body.detail).toContain('unknown query parameter "account"');
    const method = await api('PUT', '/admin/v1/tokens');
    expect(method.status).toBe(405);
    expect(method.headers.get('allow')).toBe('GET, POST');
  });

  it('keeps a sane x-request-id and answers JSON that is never cached', async () => {
    const r = await api('GET', '/admin/v1/accounts', { headers: { 'x-request-id': 'req-123' } });
    expect(r.headers.get('x-request-id')).toBe('req-123');
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.headers.get('content-type')).toBe('application/json');
  });

  it('explains a request like keygate explain', async () => {
    const r = await api('GET', `/admin/v1/explain?account=reader&method=POST&path=${encodeURIComponent('/api/items')}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: 'deny', refusal: { code: 'KG_ERR_SCOPE_DENIED' }, authorization: { wouldAllow: ['items:write'] } });
    expect((await api('GET', '/admin/v1/explain?account=reader')).status).toBe(400);
  });

  it('audits every call exactly once, with the admin identity, and never a secret', async () => {
    // The sink writes in order: once this call's line is in the file, so is every earlier one.
    expect((await api('GET', '/admin/v1/accounts', { headers: { 'x-request-id': 'audit-marker' } })).status).toBe(200);
    await audited('admin.read', (e) => e.requestId === 'audit-marker');
    expect(await audited('admin.read', (e) => e.actor === 'admin:ops' && e.target === '/admin/v1/accounts' && e.method === 'GET' && e.status === 200)).not.toHaveLength(0);
    expect(await audited('admin.failed', (e) => e.status === 413 && e.actor === 'admin:ops')).not.toHaveLength(0);
    const entries = readJsonLines(env.auditFile);
    const all = JSON.stringify(entries);
    for (const s of secrets) expect(all).not.toContain(s);
    const ids = entries.filter((e) => e.event !== 'request' && typeof e.requestId === 'string').map((e) => e.requestId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('admin API failed-authentication limit', () => {
  it('answers 429 once an address has used up its failed attempts, while a valid admin token still gets through', async () => {
    let limited: ApiResponse | undefined;
    for (let i = 0; i < 60 && !limited; i++) {
      const r = await api('GET', '/admin/v1/accounts', { token: mintToken(null) });
      if (r.status === 429) limited = r;
      else expect(r.status).toBe(401);
    }
    expect(limited).toBeDefined();
    expect(limited!.body.code).toBe('KG_ERR_AUTH_RATE_LIMITED');
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await api('GET', '/admin/v1/accounts')).status).toBe(200);
  });
});

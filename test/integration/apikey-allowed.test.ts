// A valid token gets through with the caller's identity at the upstream; its twins without a
// token, with an unknown token, and with a malformed one are refused and never reach it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let token: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  token = await seedToken(env, 'ci-deployer', { roles: ['viewer'] });
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

describe('API token', () => {
  it('forwards with the account identity and without the credential', async () => {
    const before = env.upstream.received.length;
    const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/42', headers: { 'x-api-key': token.secret } });
    expect(res.status).toBe(200);
    const got = env.upstream.received[before]!;
    expect(got.url).toBe('/api/items/42');
    expect(got.headers['x-keygate-account']).toBe('ci-deployer');
    expect(got.headers['x-keygate-credential']).toBe(token.id);
    expect(got.headers['x-keygate-auth']).toBe('api-key');
    expect(got.headers['x-keygate-scopes']).toBe('items:read');
    expect(got.headers['x-api-key']).toBeUndefined();
    expect(res.headers['x-request-id']).toBe(got.headers['x-request-id']);
  });

  it('accepts Authorization: Bearer and does not forward it', async () => {
    const before = env.upstream.received.length;
    const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items', headers: { authorization: `Bearer ${token.secret}` } });
    expect(res.status).toBe(200);
    expect(env.upstream.received[before]!.headers.authorization).toBeUndefined();
  });

  it.each([
    ['no credential', {}, 'KG_ERR_CREDENTIAL_MISSING'],
    ['a malformed token', { 'x-api-key': 'kg_notatoken' }, 'KG_ERR_TOKEN_MALFORMED'],
    ['a token with a wrong checksum', { 'x-api-key': 'x' }, 'KG_ERR_TOKEN_MALFORMED'],
  ])('refuses %s with 401 and reaches no upstream', async (_name, headers, code) => {
    const before = env.upstream.received.length;
    const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items', headers: headers as Record<string, string> });
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="keygate"/);
    expect(res.json().code).toBe(code);
    expect(env.upstream.received.length).toBe(before);
  });
});

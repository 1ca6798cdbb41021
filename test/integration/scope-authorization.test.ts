// Authorize: a request passes when a rule of one of the credential's effective scopes matches
// its method and normalized path; otherwise 403 naming the scope that would have allowed it.
// Deny by default: no scope, no access.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let viewer: string;
let editor: string;
let writeOnly: string;
let narrowed: string;
let nothing: string;

beforeAll(async () => {
  env = await createTestEnv();
  viewer = (await seedToken(env, 'viewer-svc', { roles: ['viewer'] })).secret;
  editor = (await seedToken(env, 'editor-svc', { roles: ['editor'] })).secret;
  writeOnly = (await seedToken(env, 'writer-svc', { scopes: ['items:write'] })).secret;
  // A token of the editor account restricted to a subset of its scopes.
  narrowed = (await seedToken(env, 'editor-svc', { tokenScopes: ['items:read'] })).secret;
  nothing = (await seedToken(env, 'empty-svc', { roles: [] })).secret;
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

async function call(secret: string, method: string, path: string) {
  const before = env.upstream.received.length;
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, method, path, headers: { 'x-api-key': secret }, body: method === 'POST' || method === 'PUT' ? '{}' : undefined });
  return { res, reached: env.upstream.received.length - before };
}

describe('scope rules', () => {
  it.each([
    ['viewer', 'GET', '/api/items'],
    ['viewer', 'GET', '/api/items/1'],
    ['viewer', 'GET', '/api/items/a/b/c'],
    ['editor', 'POST', '/api/items'],
    ['editor', 'PUT', '/api/items/7'],
    ['editor', 'DELETE', '/api/items/7'],
  ])('%s may %s %s', async (who, method, path) => {
    const { res, reached } = await call(who === 'viewer' ? viewer : editor, method, path);
    expect(res.status).toBe(200);
    expect(reached).toBe(1);
  });

  it.each([
    ['viewer', 'POST', '/api/items', 'items:write'],
    ['viewer', 'DELETE', '/api/items/7', 'items:write'],
    ['viewer', 'GET', '/api/reports/1', 'reports:read'],
    ['editor', 'PUT', '/api/items/7/extra', null],
    ['editor', 'PATCH', '/api/items/7', null],
  ])('%s may not %s %s: 403 naming the missing scope', async (who, method, path, scope) => {
    const { res, reached } = await call(who === 'viewer' ? viewer : editor, method, path);
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toBe('application/problem+json');
    const body = res.json<{ code: string; detail: string }>();
    expect(body.code).toBe('KG_ERR_SCOPE_DENIED');
    if (scope) expect(body.detail).toContain(scope);
    else expect(body.detail).toMatch(/No scope allows/);
    expect(body.detail).toContain(`${method} ${path}`);
    // An answer to an authenticated request: it carries the rate-limit budget too (SPEC §5).
    expect(res.headers['ratelimit-limit']).toBeDefined();
    expect(res.headers['x-ratelimit-remaining']).toBeDefined();
    expect(reached).toBe(0);
  });

  it('a token restricted to some of its account scopes gets only those', async () => {
    expect((await call(narrowed, 'GET', '/api/items/1')).res.status).toBe(200);
    const denied = await call(narrowed, 'POST', '/api/items');
    expect(denied.res.status).toBe(403);
    expect(denied.res.json().detail).toContain('items:write');
    expect(denied.reached).toBe(0);
  });

  it('an account without any scope may do nothing', async () => {
    for (const [method, path] of [['GET', '/api/items'], ['GET', '/api/reports/1'], ['GET', '/']]) {
      const { res, reached } = await call(nothing, method!, path!);
      expect(res.status).toBe(403);
      expect(reached).toBe(0);
    }
  });
});

describe('HEAD', () => {
  it('is admitted by a GET rule', async () => {
    const { res, reached } = await call(viewer, 'HEAD', '/api/items/1');
    expect(res.status).toBe(200);
    expect(res.body).toBe('');
    expect(reached).toBe(1);
    expect(env.upstream.received.at(-1)!.method).toBe('HEAD');
  });

  it('is refused where no GET rule matches, even if another method is allowed there', async () => {
    expect((await call(viewer, 'HEAD', '/api/reports/1')).res.status).toBe(403);
    // writer-svc may PUT /api/items/* but not GET it, so not HEAD it either.
    const { res, reached } = await call(writeOnly, 'HEAD', '/api/items/1');
    expect(res.status).toBe(403);
    expect(reached).toBe(0);
  });
});

// Paths are normalized once, and the path that was checked is the path forwarded: the upstream
// can only be reached through a spelling the scope rules saw. Ambiguous spellings are refused
// with 400 before anything reaches the upstream; the query string travels untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, rawRequest, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let token: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({
    routes: [
      { pathPrefix: '/healthz', upstream: env.upstream.url, public: true },
      { pathPrefix: '/status', upstream: env.upstream.url },
      { pathPrefix: '/api', upstream: env.upstream.url },
    ],
    scopes: { 'status:read': ['GET /status'] },
    roles: { viewer: ['items:read', 'status:read'] },
  });
  token = await seedToken(env, 'reader', { roles: ['viewer'] });
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

async function get(path: string, headers: Record<string, string> = { 'x-api-key': token.secret }) {
  const before = env.upstream.received.length;
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path, headers });
  return { res, got: env.upstream.received[before], reached: env.upstream.received.length - before };
}

describe('normalized paths', () => {
  it.each([
    ['/api/items/./42//x', '/api/items/42/x'],
    ['/api//items///42', '/api/items/42'],
    ['/api/items/%34%32', '/api/items/42'],
    ['/api/reports/../items/7', '/api/items/7'],
    ['/api/items/%7Ea%2d%5f', '/api/items/~a-_'],
    ['/api/items/caf%c3%a9', '/api/items/caf%C3%A9'],
    ['/api/items/x/.', '/api/items/x/'],
  ])('%s reaches the upstream as %s', async (sent, forwarded) => {
    const { res, got } = await get(sent);
    expect(res.status).toBe(200);
    expect(got!.url).toBe(forwarded);
  });

  it.each([
    ['/api/items/../reports/1'],
    ['/api/items/%2e%2e/reports/1'],
    ['/api/items/%2E%2E/%2E%2E/api/reports/1'],
  ])('%s is checked as the path it normalizes to, which this token may not read (403)', async (sent) => {
    const { res, reached } = await get(sent);
    expect(res.status).toBe(403);
    expect(res.json().detail).toContain('/api/reports/1');
    expect(reached).toBe(0);
  });
});

describe('ambiguous paths', () => {
  it.each([
    ['an encoded slash', '/api/items%2F..%2Freports/1'],
    ['an encoded slash, lower case', '/api/items/1%2fx'],
    ['an encoded backslash', '/api/items/1%5C..%5Creports'],
    ['.. above the root', '/../api/items/1'],
    ['.. above the root, deeper', '/api/items/../../../etc/passwd'],
    ['an encoded NUL', '/api/items/1%00.json'],
    ['invalid percent-encoding', '/api/items/%zz'],
    ['a truncated escape', '/api/items/%4'],
  ])('with %s: 400 problem+json, nothing forwarded', async (_name, path) => {
    const { res, reached } = await get(path);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/problem+json');
    const body = res.json();
    expect(body.code).toBe('KG_ERR_PATH_INVALID');
    expect(body.status).toBe(400);
    expect(body.requestId).toBe(res.headers['x-request-id']);
    expect(reached).toBe(0);
  });

  it.each([
    ['a raw backslash', 'GET /api/items/1\\..\\x HTTP/1.1'],
    ['a raw NUL', 'GET /api/items/1\u0000 HTTP/1.1'],
  ])('with %s (sent raw): 400, nothing forwarded', async (_name, line) => {
    const before = env.upstream.received.length;
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: `${line}\r\nHost: api.test\r\nx-api-key: ${token.secret}\r\nConnection: close\r\n\r\n` });
    expect(r.status).toBe(400);
    expect(env.upstream.received.length).toBe(before);
  });
});

describe('query strings', () => {
  it('are forwarded byte for byte, whatever they contain', async () => {
    const query = '?b=%2F&a=..%2f&x=%zz&empty&q=./..&u=caf%C3%a9&list=1,2;3';
    const { res, got } = await get('/api/items/./1' + query);
    expect(res.status).toBe(200);
    expect(got!.url).toBe('/api/items/1' + query);
  });

  it('are not part of the path the scope rules check', async () => {
    const { res, reached } = await get('/api/reports/1?/api/items/1');
    expect(res.status).toBe(403);
    expect(reached).toBe(0);
  });
});

describe('routes', () => {
  it('no route for the path: 404, nothing forwarded', async () => {
    for (const path of ['/other', '/apix', '/']) {
      const { res, reached } = await get(path);
      expect(res.status, path).toBe(404);
      expect(res.json().code).toBe('KG_ERR_NO_ROUTE');
      expect(reached).toBe(0);
    }
  });

  it('a route prefix matches whole segments', async () => {
    const { res } = await get('/api/items');
    expect(res.status).toBe(200);
  });

  it('a public route is served without a token, and without identity headers', async () => {
    for (const path of ['/healthz', '/healthz/deep']) {
      const { res, got } = await get(path, {});
      expect(res.status).toBe(200);
      expect(got!.url).toBe(path);
      expect(got!.headers['x-keygate-account']).toBeUndefined();
    }
  });

  it('its non-public twin needs a token', async () => {
    const without = await get('/status', {});
    expect(without.res.status).toBe(401);
    expect(without.res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(without.reached).toBe(0);
    const withToken = await get('/status');
    expect(withToken.res.status).toBe(200);
    expect(withToken.got!.headers['x-keygate-account']).toBe('reader');
  });

  it('a path that only starts like the public prefix is not public', async () => {
    const { res, reached } = await get('/healthzz', {});
    expect(res.status).toBe(404);
    expect(reached).toBe(0);
  });
});

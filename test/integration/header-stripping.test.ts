// Strip, then set: whatever identity a caller writes into headers never reaches the upstream;
// keygate's own identity headers, the x-forwarded-* set and the request id are what it sees.
// Each "passes" case has its "never passes" twin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import type { Received } from '../helpers/echo-upstream.js';
import { SETUP_TIMEOUT_MS, rawRequest, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let token: { secret: string; id: string };
let other: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  token = await seedToken(env, 'ci-deployer', { roles: ['viewer'] });
  other = await seedToken(env, 'ci-deployer');
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

async function send(opts: { path?: string; headers?: Record<string, string | string[]>; host?: string }): Promise<{ status: number; got: Received | undefined; res: Awaited<ReturnType<typeof request>> }> {
  const before = env.upstream.received.length;
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: opts.path ?? '/api/items/1', headers: opts.headers, host: opts.host });
  return { status: res.status, got: env.upstream.received[before], res };
}

/** How many times the upstream received a header (raw, any case). */
function count(got: Received, name: string): number {
  let n = 0;
  for (let i = 0; i < got.rawHeaders.length; i += 2) if (got.rawHeaders[i]!.toLowerCase() === name) n++;
  return n;
}

describe('identity headers a caller sends', () => {
  const spoofed = {
    'X-Keygate-Account': 'root',
    'x-KEYGATE-scopes': 'items:write,keygate:admin',
    'X-KEYGATE-AUTH': 'mtls',
    'x-keygate-credential': 'tok_forged',
    'x-keygate-anything-else': '1',
    'X-Forwarded-Client-Cert': 'Hash=00;Subject="CN=root"',
  };

  it('are replaced by the real identity on an authenticated request', async () => {
    const { status, got } = await send({ headers: { 'x-api-key': token.secret, ...spoofed, 'x-keygateway': 'not ours', 'x-custom': 'kept' } });
    expect(status).toBe(200);
    expect(got!.headers['x-keygate-account']).toBe('ci-deployer');
    expect(got!.headers['x-keygate-credential']).toBe(token.id);
    expect(got!.headers['x-keygate-auth']).toBe('api-key');
    expect(got!.headers['x-keygate-scopes']).toBe('items:read');
    for (const name of ['x-keygate-account', 'x-keygate-scopes', 'x-keygate-auth', 'x-keygate-credential']) expect(count(got!, name)).toBe(1);
    expect(got!.headers['x-keygate-anything-else']).toBeUndefined();
    expect(got!.headers['x-forwarded-client-cert']).toBeUndefined();
    // The twin: headers that merely look alike, and ordinary ones, pass untouched.
    expect(got!.headers['x-keygateway']).toBe('not ours');
    expect(got!.headers['x-custom']).toBe('kept');
  });

  it('are removed, not replaced, on a public route', async () => {
    const { status, got } = await send({ path: '/healthz', headers: spoofed });
    expect(status).toBe(200);
    for (const name of Object.keys(spoofed)) expect(got!.headers[name.toLowerCase()]).toBeUndefined();
  });

  it('never reach the upstream when authentication fails', async () => {
    const { status, got } = await send({ headers: spoofed });
    expect(status).toBe(401);
    expect(got).toBeUndefined();
  });
});

describe('hop-by-hop headers', () => {
  it('are removed, including every header the Connection header lists', async () => {
    // Raw bytes: Node's own client refuses to send some of these (Trailer without chunking).
    const before = env.upstream.received.length;
    const head = [
      'GET /api/items/1 HTTP/1.1',
      'Host: api.test',
      `x-api-key: ${token.secret}`,
      'Connection: close, X-Drop-Me, x-also-gone',
      'X-Drop-Me: secret hop',
      'x-also-gone: 1',
      'x-stays: 1',
      'Keep-Alive: timeout=5',
      'Proxy-Connection: keep-alive',
      'Proxy-Authorization: Basic cHJveHk6cHc=',
      'TE: trailers',
      'Trailer: x-checksum',
      'Upgrade: h2c',
    ].join('\r\n');
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: head + '\r\n\r\n' });
    expect(r.status).toBe(200);
    const got = env.upstream.received[before]!;
    for (const name of ['x-drop-me', 'x-also-gone', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade']) {
      expect(got.headers[name], name).toBeUndefined();
    }
    expect(got.headers.connection ?? '').not.toMatch(/drop|gone|close/i);
    // The twin: a header no Connection lists passes.
    expect(got.headers['x-stays']).toBe('1');
  });
});

describe('hop-by-hop headers of the upstream answer', () => {
  it.each([
    ['one name', 'x-upstream-hop'],
    ['a list', 'keep-alive, x-upstream-hop'],
  ])('are removed when its Connection header lists %s', async (_name, connection) => {
    env.upstream.handle((_req, res) => {
      res.setHeader('connection', connection);
      res.setHeader('x-upstream-hop', '1');
      res.setHeader('x-upstream-end-to-end', '1');
      res.setHeader('content-length', '2');
      res.end('ok');
    });
    try {
      const { status, res } = await send({ headers: { 'x-api-key': token.secret } });
      expect(status).toBe(200);
      expect(res.headers['x-upstream-hop']).toBeUndefined();
      expect(res.headers['x-upstream-end-to-end']).toBe('1');
    } finally {
      env.upstream.handle(null);
    }
  });
});

describe('the credential', () => {
  it('in x-api-key or as a keygate Bearer token is never forwarded', async () => {
    const variants: Array<Record<string, string>> = [{ 'x-api-key': token.secret }, { authorization: `Bearer ${token.secret}` }, { 'X-API-KEY': token.secret, authorization: `bearer ${token.secret}` }];
    for (const headers of variants) {
      const { status, got } = await send({ headers });
      expect(status).toBe(200);
      expect(got!.headers['x-api-key']).toBeUndefined();
      expect(got!.headers.authorization).toBeUndefined();
      expect(JSON.stringify(got!.rawHeaders)).not.toContain(token.secret);
    }
  });

  it("lets the upstream's own Authorization through next to x-api-key", async () => {
    const basic = 'Basic dXBzdHJlYW06cGFzc3dvcmQ=';
    const a = await send({ headers: { 'x-api-key': token.secret, authorization: basic } });
    expect(a.status).toBe(200);
    expect(a.got!.headers.authorization).toBe(basic);
    expect(a.got!.headers['x-api-key']).toBeUndefined();
    const b = await send({ headers: { 'x-api-key': token.secret, authorization: 'Bearer upstream-session-abc' } });
    expect(b.status).toBe(200);
    expect(b.got!.headers.authorization).toBe('Bearer upstream-session-abc');
  });

  it('sent twice as two different tokens is refused as ambiguous', async () => {
    const variants: Array<Record<string, string | string[]>> = [
      { 'x-api-key': token.secret, authorization: `Bearer ${other.secret}` },
      { 'x-api-key': [token.secret, other.secret] },
      { authorization: [`Bearer ${token.secret}`, `Bearer ${other.secret}`] },
    ];
    for (const headers of variants) {
      const { status, got, res } = await send({ headers });
      expect(status).toBe(401);
      expect(res.json().code).toBe('KG_ERR_CREDENTIAL_AMBIGUOUS');
      expect(got).toBeUndefined();
    }
  });
});

describe('x-forwarded-*', () => {
  it('appends the client address to x-forwarded-for and sets proto and host', async () => {
    const { got } = await send({ headers: { 'x-api-key': token.secret, 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example' } });
    expect(got!.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(got!.headers['x-forwarded-proto']).toBe('https');
    expect(got!.headers['x-forwarded-host']).toBe('api.test');
    expect(count(got!, 'x-forwarded-proto')).toBe(1);
    expect(count(got!, 'x-forwarded-host')).toBe(1);
  });

  it('starts x-forwarded-for with the client address when the client sent none', async () => {
    const { got } = await send({ headers: { 'x-api-key': token.secret }, host: 'api.test:8443' });
    expect(got!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(got!.headers['x-forwarded-host']).toBe('api.test:8443');
  });
});

describe('x-request-id', () => {
  it('is kept when sane, and echoed on the response', async () => {
    const { res, got } = await send({ headers: { 'x-api-key': token.secret, 'x-request-id': 'build-7781_step.3' } });
    expect(got!.headers['x-request-id']).toBe('build-7781_step.3');
    expect(res.headers['x-request-id']).toBe('build-7781_step.3');
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['with spaces and markup', 'id <script>alert(1)</script>'],
    ['with a quote', 'abc"def'],
  ])('is replaced when %s', async (_name, id) => {
    const { res, got } = await send({ headers: { 'x-api-key': token.secret, 'x-request-id': id } });
    const echoed = res.headers['x-request-id'] as string;
    expect(echoed).not.toBe(id);
    expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
    expect(got!.headers['x-request-id']).toBe(echoed);
    expect(count(got!, 'x-request-id')).toBe(1);
  });

  it("wins over an upstream's own x-request-id on the response", async () => {
    env.upstream.handle((_req, res) => {
      res.writeHead(200, { 'x-request-id': 'upstream-made-this', 'content-length': '2' });
      res.end('ok');
    });
    try {
      const { res } = await send({ headers: { 'x-api-key': token.secret, 'x-request-id': 'mine-1' } });
      expect(res.headers['x-request-id']).toBe('mine-1');
    } finally {
      env.upstream.handle(null);
    }
  });

  it.each([
    ['401', '/api/items', false, 401],
    ['403', '/api/reports/1', true, 403],
    ['400', '/api/%2e%2e/%2e%2e/etc', true, 400],
  ])('is echoed on keygate answers too (%s)', async (_name, path, withToken, status) => {
    const h: Record<string, string> = withToken ? { 'x-api-key': token.secret } : {};
    const sent = await send({ path, headers: { ...h, 'x-request-id': 'err-req-9' } });
    expect(sent.status).toBe(status);
    expect(sent.res.headers['x-request-id']).toBe('err-req-9');
    expect(sent.res.json().requestId).toBe('err-req-9');
    const fresh = await send({ path, headers: h });
    const generated = fresh.res.headers['x-request-id'] as string;
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(fresh.res.json().requestId).toBe(generated);
  });
});

// A slow or huge request cannot pin the process: a request head over listen.limits.maxHeaderSize
// gets 431 and the process carries on; a head, a body or an idle keep-alive connection that
// stalls past its timeout is cut off (408); a request that is not HTTP/1.1 gets 400. Each of
// those is a problem+json answer with its own code, audited and counted like any refusal. Run
// against the real binary, because "the process survives" is a property of the process.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, readJsonLines, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, rawJson, rawRequest, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let secret: string;

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ listen: { limits: { maxHeaderSize: 2048, headersTimeout: '1s', requestTimeout: '6s', keepAliveTimeout: '1s' } } });
  secret = (await seedToken(env, 'svc', { roles: ['editor'] })).secret;
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

const call = (headers: Record<string, string>) => request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/1', headers: { 'x-api-key': secret, ...headers } });

describe('maxHeaderSize', () => {
  it('a head within the limit is served', async () => {
    const before = env.upstream.received.length;
    const res = await call({ 'x-padding': 'p'.repeat(1200) });
    expect(res.status).toBe(200);
    expect(env.upstream.received.length).toBe(before + 1);
  });

  it('a head over the limit gets 431, reaches nothing, and the process keeps serving', async () => {
    const before = env.upstream.received.length;
    const res = await call({ 'x-padding': 'p'.repeat(4096) });
    expect(res.status).toBe(431);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json()).toMatchObject({ status: 431, code: 'KG_ERR_HEADERS_TOO_LARGE', requestId: res.headers['x-request-id'] });
    await eventually(() => readJsonLines(env.auditFile).some((a) => a.requestId === res.headers['x-request-id'] && a.status === 431 && a.reason === 'KG_ERR_HEADERS_TOO_LARGE'), 3_000);
    const many: Record<string, string> = {};
    for (let i = 0; i < 100; i++) many[`x-h${i}`] = 'v'.repeat(30);
    expect((await call(many)).status).toBe(431);
    expect(env.upstream.received.length).toBe(before);
    expect(proxy.child.exitCode).toBeNull();
    expect((await call({})).status).toBe(200);
  });
});

describe('malformed requests', () => {
  it('a request that is not HTTP/1.1 gets a 400 problem+json, audited, and reaches nothing', async () => {
    const before = env.upstream.received.length;
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: 'GET /api/items/1 HTTP/1.1\r\nHost api.test\r\n\r\n', timeoutMs: 4_000 });
    expect(r.status).toBe(400);
    const body = rawJson(r);
    expect(body).toMatchObject({ status: 400, code: 'KG_ERR_MALFORMED_REQUEST' });
    expect(r.closed).toBe(true);
    expect(env.upstream.received.length).toBe(before);
    await eventually(() => readJsonLines(env.auditFile).some((a) => a.requestId === body.requestId && a.decision === 'deny'), 3_000);
  });

  it('the 400 to a malformed HEAD request has the head only (a HEAD answer has no body); GET has the body', async () => {
    const head = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: `HEAD %2Fapi HTTP/1.1\r\nHost: api.test\r\nx-api-key: ${secret}\r\n\r\n`, timeoutMs: 4_000 });
    expect(head.status).toBe(400);
    expect(head.closed).toBe(true);
    expect(head.text).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/);
    expect(head.text.endsWith('\r\n\r\n')).toBe(true);
    // Node's own client, which knows it sent HEAD, reads the answer as complete.
    const viaClient = await request({ port: proxy.port, ca: env.serverCa.certPem, method: 'HEAD', path: '%2Fapi', headers: { 'x-api-key': secret } });
    expect([viaClient.status, viaClient.body]).toEqual([400, '']);
    const get = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: `GET %2Fapi HTTP/1.1\r\nHost: api.test\r\nx-api-key: ${secret}\r\n\r\n`, timeoutMs: 4_000 });
    expect([get.status, rawJson(get).code]).toEqual([400, 'KG_ERR_MALFORMED_REQUEST']);
  });

  it('the twin: the same request written correctly is served', async () => {
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: `GET /api/items/1 HTTP/1.1\r\nHost: api.test\r\nx-api-key: ${secret}\r\nConnection: close\r\n\r\n`, timeoutMs: 4_000 });
    expect(r.status).toBe(200);
  });
});

describe('timeouts', () => {
  const head = `GET /api/items/1 HTTP/1.1\r\nHost: api.test\r\nx-api-key: `;

  it('a client that sends part of the head and stalls is cut off after headersTimeout', async () => {
    const before = env.upstream.received.length;
    // headersTimeout 1 s, checked every second: closed well within 4.5 s, and before the
    // 6 s requestTimeout could be what closed it.
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: 'GET /api/items/1 HTTP/1.1\r\nHost: api.test\r\n', timeoutMs: 4_500 });
    expect(r.closed).toBe(true);
    expect(r.status).toBe(408);
    expect(rawJson(r)).toMatchObject({ status: 408, code: 'KG_ERR_REQUEST_TIMEOUT' });
    expect(env.upstream.received.length).toBe(before);
  });

  it('the twin: a head that arrives in pieces within the time is served', async () => {
    const res = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = tls.connect({ host: '127.0.0.1', port: proxy.port, servername: 'api.test', ca: env.serverCa.certPem }, () => {
        s.write(head);
        setTimeout(() => s.write(`${secret}\r\nConnection: close\r\n\r\n`), 200);
      });
      s.setTimeout(5_000, () => s.destroy(new Error('no answer within 5 s')));
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      s.on('error', reject);
    });
    expect(res).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('a client that sends the head but stalls its body is cut off after requestTimeout', async () => {
    const post = `POST /api/items HTTP/1.1\r\nHost: api.test\r\nx-api-key: ${secret}\r\nContent-Length: 100\r\n\r\n0123456789`;
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: post, timeoutMs: 10_000 });
    expect(r.closed).toBe(true);
    expect(proxy.child.exitCode).toBeNull();
  });

  it('an idle keep-alive connection is closed after keepAliveTimeout, once its answer is complete', async () => {
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: `${head}${secret}\r\n\r\n`, timeoutMs: 6_000 });
    expect(r.status).toBe(200);
    expect(r.closed).toBe(true);
  });
});

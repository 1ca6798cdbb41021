// A client that goes away aborts the upstream request (no work continues for nobody), and the
// request is still audited and counted exactly once, as client_closed with status 499 when no
// answer had started.
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, readJsonLines, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { AUDIT_FLUSH_MS, SETUP_TIMEOUT_MS, metricsOf, sample, seedToken, signal, startUpstream, type PlainUpstream, within } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let upstream: PlainUpstream;
let secret: string;

interface Seen {
  started: ReturnType<typeof signal<void>>;
  /** Resolves with true when the upstream's request ended before its answer was complete. */
  closed: ReturnType<typeof signal<boolean>>;
}
const seen = new Map<string, Seen>();
const track = (id: string): Seen => {
  const s = { started: signal(), closed: signal<boolean>() };
  seen.set(id, s);
  return s;
};

beforeAll(async () => {
  env = await createTestEnv();
  upstream = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    const s = seen.get(String(req.headers['x-request-id']))!;
    res.on('close', () => s.closed.resolve(!res.writableFinished));
    if (req.url === '/api/hold') {
      s.started.resolve(); // never answers
    } else if (req.url === '/api/trickle') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part\n', () => s.started.resolve()); // and never the rest
    } else if (req.url === '/api/upload') {
      req.once('data', () => s.started.resolve());
      req.on('end', () => res.end('done'));
    } else {
      res.end('ok');
      s.started.resolve();
    }
  });
  env.writeConfig({ routes: [{ pathPrefix: '/api', upstream: upstream.url }], scopes: { any: ['* /**'] } });
  secret = (await seedToken(env, 'svc-abort', { scopes: ['any'] })).secret;
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(async () => {
  await upstream.close();
  await env.cleanup();
});

const outcomes = async (outcome: string) => sample(await metricsOf(proxy), 'keygate_requests_total', { account: 'svc-abort', auth: 'api-key', outcome });
const auditOf = (id: string) => readJsonLines(env.auditFile).filter((e) => e.event === 'request' && e.requestId === id);

function open(method: string, path: string, id: string, headers: Record<string, string | number> = {}) {
  const req = https.request({ host: '127.0.0.1', port: proxy.port, servername: 'api.test', ca: env.serverCa.certPem, method, path, agent: false, headers: { host: 'api.test', 'x-api-key': secret, 'x-request-id': id, ...headers } });
  req.on('error', () => undefined); // the test destroys it
  return req;
}

/**
 * After the abort: one audit line, and still one once the line of another request, sent after
 * it, is in the file too (the sink writes in order, so a second line would be there by then).
 */
async function expectAuditedOnce(id: string) {
  await eventually(() => auditOf(id).length === 1, AUDIT_FLUSH_MS);
  const s = track('after-' + id);
  expect((await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/ok', headers: { 'x-api-key': secret, 'x-request-id': 'after-' + id } })).status).toBe(200);
  await s.closed.promise;
  await eventually(() => auditOf('after-' + id).length === 1, AUDIT_FLUSH_MS);
  expect(auditOf(id)).toHaveLength(1);
  return auditOf(id)[0]!;
}

describe('a client that goes away', () => {
  it('before the answer starts: the upstream request is aborted; audited once as 499', async () => {
    const id = 'abort-before-answer';
    const s = track(id);
    const before = await outcomes('client_closed');
    const req = open('GET', '/api/hold', id);
    req.end();
    await within(s.started.promise, 5_000, 'upstream got the request');
    req.destroy();
    expect(await within(s.closed.promise, 5_000, 'upstream request aborted')).toBe(true);
    const entry = await expectAuditedOnce(id);
    expect(entry).toMatchObject({ status: 499, decision: 'allow', account: 'svc-abort' });
    expect(String(entry.reason)).toMatch(/client closed$/);
    expect(await outcomes('client_closed')).toBe(before + 1);
  });

  it('mid-response: the upstream response is aborted; audited once with the status sent', async () => {
    const id = 'abort-mid-response';
    const s = track(id);
    const before = await outcomes('client_closed');
    const req = open('GET', '/api/trickle', id);
    const firstBytes = new Promise<void>((resolve) => req.on('response', (res) => res.once('data', () => resolve())));
    req.end();
    await within(firstBytes, 5_000, 'client got the first bytes');
    req.destroy();
    expect(await within(s.closed.promise, 5_000, 'upstream response aborted')).toBe(true);
    const entry = await expectAuditedOnce(id);
    expect(entry.status).toBe(200);
    expect(String(entry.reason)).toMatch(/client closed$/);
    expect(await outcomes('client_closed')).toBe(before + 1);
  });

  it('mid-upload: the upstream request is aborted; audited once', async () => {
    const id = 'abort-mid-upload';
    const s = track(id);
    const req = open('POST', '/api/upload', id, { 'content-length': 10 * 1024 * 1024 });
    req.write(Buffer.alloc(64 * 1024, 1));
    await within(s.started.promise, 5_000, 'upstream got the first bytes');
    req.destroy();
    expect(await within(s.closed.promise, 5_000, 'upstream request aborted')).toBe(true);
    const entry = await expectAuditedOnce(id);
    expect(entry.status).toBe(499);
  });

  it('the twin: a client that stays gets the whole answer, audited once as allowed', async () => {
    const id = 'stays';
    const s = track(id);
    const before = await outcomes('allowed');
    const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/ok', headers: { 'x-api-key': secret, 'x-request-id': id } });
    expect(res.status).toBe(200);
    expect(await within(s.closed.promise, 5_000, 'upstream answered')).toBe(false);
    const entry = await expectAuditedOnce(id);
    expect(entry).toMatchObject({ status: 200, decision: 'allow' });
    // This request and the one expectAuditedOnce sent.
    expect(await outcomes('allowed')).toBe(before + 2);
  });
});

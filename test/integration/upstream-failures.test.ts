// Forward failures: an upstream that refuses the connection is a 502, one that does not answer
// within the route timeout a 504, each counted by reason; an answer that breaks off after its
// head is cut off for the client too, never passed on as if complete.
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, awaitAudit, closedPort, metricsOf, sample, seedToken, startUpstream, type PlainUpstream } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let slow: PlainUpstream;
let secret: string;
const held: ServerResponse[] = [];

beforeAll(async () => {
  env = await createTestEnv();
  // The slow upstream answers /slow/fast at once, holds /slow/hang forever, and sends only the
  // head of /slow/stall.
  slow = await startUpstream((req, res) => {
    if (req.url === '/slow/fast') {
      res.writeHead(200, { 'content-length': '4' });
      res.end('fast');
    } else if (req.url === '/slow/stall') {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('x'.repeat(10));
      held.push(res);
    } else if (req.url === '/slow/break') {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('y'.repeat(10), () => setTimeout(() => res.socket?.destroy(), 20));
    } else {
      held.push(res);
    }
  });
  const down = await closedPort();
  env.writeConfig({
    routes: [
      { pathPrefix: '/down', upstream: `http://127.0.0.1:${down}` },
      { pathPrefix: '/slow', upstream: slow.url, timeout: '300ms' },
      { pathPrefix: '/', upstream: env.upstream.url },
    ],
    scopes: { any: ['* /**'] },
  });
  secret = (await seedToken(env, 'svc', { scopes: ['any'] })).secret;
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(async () => {
  for (const r of held) r.destroy();
  await slow.close();
  await env.cleanup();
});

const upstreamErrors = async (reason: string) => sample(await metricsOf(proxy), 'keygate_upstream_errors_total', { reason });
const call = (path: string, requestId?: string) => request({ port: proxy.port, ca: env.serverCa.certPem, path, headers: { 'x-api-key': secret, ...(requestId ? { 'x-request-id': requestId } : {}) } });
/** The one audit line of a request (the sink writes it within a second or so). */
const auditOf = async (requestId: string) => {
  const lines = await awaitAudit(env.auditFile, (e) => e.event === 'request' && e.requestId === requestId);
  expect(lines).toHaveLength(1);
  return lines[0]!;
};

describe('upstream failures', () => {
  it('a refused connection is 502 KG_ERR_UPSTREAM_UNAVAILABLE, counted as refused', async () => {
    const before = await upstreamErrors('refused');
    const res = await call('/down/x', 'refused-1');
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json().code).toBe('KG_ERR_UPSTREAM_UNAVAILABLE');
    expect(await upstreamErrors('refused')).toBe(before + 1);
    expect(await auditOf('refused-1')).toMatchObject({ status: 502, decision: 'error' });
  });

  it('a reachable upstream on the next route answers (the twin)', async () => {
    expect((await call('/up/x')).status).toBe(200);
  });

  it('no answer within the route timeout is 504 KG_ERR_UPSTREAM_TIMEOUT, counted as timeout', async () => {
    const before = await upstreamErrors('timeout');
    const res = await call('/slow/hang');
    expect(res.status).toBe(504);
    expect(res.json().code).toBe('KG_ERR_UPSTREAM_TIMEOUT');
    expect(await upstreamErrors('timeout')).toBe(before + 1);
  });

  it('an answer within the route timeout passes (the twin)', async () => {
    const res = await call('/slow/fast');
    expect(res.status).toBe(200);
    expect(res.body).toBe('fast');
  });

  it('a body that stalls past the timeout is cut off, not passed on as complete', async () => {
    const before = await upstreamErrors('timeout');
    await expect(call('/slow/stall')).rejects.toThrow();
    await eventually(async () => (await upstreamErrors('timeout')) === before + 1, 2_000);
  });

  it('an upstream that breaks off mid-body is cut off for the client and counted', async () => {
    const before = await upstreamErrors('reset');
    await expect(call('/slow/break', 'break-1')).rejects.toThrow();
    await eventually(async () => (await upstreamErrors('reset')) === before + 1, 2_000);
    expect((await auditOf('break-1')).decision).toBe('error');
  });
});

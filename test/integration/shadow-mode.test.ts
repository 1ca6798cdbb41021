// Shadow before enforce: with authorization.mode: shadow a request no scope allows is let
// through, logged and counted as a shadow denial; authentication is still enforced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, awaitAudit, metricsOf, sample, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let viewer: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ authorization: { mode: 'shadow' } });
  viewer = await seedToken(env, 'viewer-svc', { roles: ['viewer'] });
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

const shadowDenials = async () => sample(await metricsOf(proxy), 'keygate_shadow_denials_total', { account: 'viewer-svc' });

async function call(method: string, path: string, headers: Record<string, string> = { 'x-api-key': viewer.secret }) {
  const before = env.upstream.received.length;
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, method, path, headers, body: method === 'POST' ? '{}' : undefined });
  return { res, reached: env.upstream.received.length - before };
}

describe('authorization.mode: shadow', () => {
  it('lets a request no scope allows through, and counts it', async () => {
    const before = await shadowDenials();
    const { res, reached } = await call('POST', '/api/items');
    expect(res.status).toBe(200);
    expect(reached).toBe(1);
    expect(await shadowDenials()).toBe(before + 1);
    const [entry, ...more] = await awaitAudit(env.auditFile, (e) => e.event === 'request' && e.requestId === res.headers['x-request-id']);
    expect(more).toHaveLength(0);
    expect(entry.decision).toBe('allow');
    expect(String(entry.reason)).toMatch(/^shadow: would deny: POST \/api\/items needs one of these scopes: items:write/);
  });

  it('does not count a request its scopes allow', async () => {
    const before = await shadowDenials();
    const { res } = await call('GET', '/api/items/1');
    expect(res.status).toBe(200);
    expect(await shadowDenials()).toBe(before);
  });

  it('still refuses a request without a valid credential', async () => {
    const { res, reached } = await call('POST', '/api/items', {});
    expect(res.status).toBe(401);
    expect(reached).toBe(0);
  });
});

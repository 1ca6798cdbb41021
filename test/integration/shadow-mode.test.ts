// Shadow before enforce: with authorization.mode: shadow a request no scope allows is let
// through, logged and counted as a shadow denial; authentication is still enforced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, request, type InProcessProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, sample } from './support.js';

let env: TestEnv;
let proxy: InProcessProxy;
let viewer: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ authorization: { mode: 'shadow' } });
  viewer = await env.token('viewer-svc', { roles: ['viewer'] });
  proxy = await env.startInProcess();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

const shadowDenials = async () => sample(await proxy.registry.metrics(), 'keygate_shadow_denials_total', { account: 'viewer-svc' });

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
    const entry = proxy.audit.entries.filter((e) => e.event === 'request').at(-1)!;
    expect(entry.requestId).toBe(res.headers['x-request-id']);
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

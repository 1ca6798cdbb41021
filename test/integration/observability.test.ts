// Observability on the real binary: one audit JSON line per request with the SPEC §6 fields
// (never the query string), the SPEC §6 metrics on the admin listener with label values from
// bounded sets only (never a request path or anything else a caller chooses), /healthz and
// /readyz.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, readJsonLines, eventually, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, adminGet, closedPort, sample, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let viewer: { secret: string; id: string };
let limited: { secret: string; id: string };
let expiring: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  const down = await closedPort();
  env.writeConfig({
    routes: [
      { pathPrefix: '/healthz', upstream: env.upstream.url, public: true },
      { pathPrefix: '/api/down', upstream: `http://127.0.0.1:${down}` },
      { pathPrefix: '/', upstream: env.upstream.url },
    ],
    scopes: { 'down:read': ['GET /api/down'] },
    roles: { viewer: ['items:read', 'down:read'] },
    policies: { default: { rate: '1000/s', burst: 1000 }, one: { rate: '1/m', burst: 1 } },
  });
  viewer = await seedToken(env, 'svc-observed', { roles: ['viewer'] });
  limited = await seedToken(env, 'svc-limited', { roles: ['viewer'], policy: 'one' });
  expiring = await seedToken(env, 'svc-observed', { expires: '30d' });
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

const call = (path: string, headers: Record<string, string>) => request({ port: proxy.port, ca: env.serverCa.certPem, path, headers });
const metricsText = async () => {
  const r = await adminGet(proxy.adminPort, '/metrics');
  expect(r.status).toBe(200);
  return r.body;
};

/** Audit lines of one request id (every line must be JSON). */
function auditOf(requestId: string): Array<Record<string, unknown>> {
  return readJsonLines(env.auditFile).filter((a) => a.requestId === requestId);
}

describe('audit', () => {
  it.each([
    ['allowed', '/api/items/1?filter=name&page=2', 'viewer', 200, 'allow', /^scope items:read: GET \/api\/items\/\*\*$/],
    ['denied by scope', '/api/reports/1?x=1', 'viewer', 403, 'deny', /^KG_ERR_SCOPE_DENIED$/],
    ['unauthenticated', '/api/items/1?x=1', 'none', 401, 'deny', /^KG_ERR_CREDENTIAL_MISSING$/],
    ['an upstream failure', '/api/down?x=1', 'viewer', 502, 'error', /^KG_ERR_UPSTREAM_UNAVAILABLE \(refused\)$/],
  ])('one line for a request %s, with the SPEC fields and no query string', async (_name, path, who, status, decision, reason) => {
    const requestId = `obs-${randomUUID()}`;
    const before = Date.now();
    const res = await call(path, { 'x-request-id': requestId, ...(who === 'viewer' ? { 'x-api-key': viewer.secret } : {}) });
    expect(res.status).toBe(status);
    // Flushed at least once a second.
    await eventually(() => auditOf(requestId).length > 0, 3_000);
    const lines = auditOf(requestId);
    expect(lines).toHaveLength(1);
    const a = lines[0]!;
    expect(a).toMatchObject({
      event: 'request',
      requestId,
      account: who === 'viewer' ? 'svc-observed' : null,
      credential: who === 'viewer' ? viewer.id : null,
      auth: 'api-key',
      method: 'GET',
      host: 'api.test',
      path: path.slice(0, path.indexOf('?')),
      status,
      decision,
      clientIp: '127.0.0.1',
    });
    expect(String(a.reason)).toMatch(reason);
    expect(typeof a.durationMs).toBe('number');
    expect(a.durationMs as number).toBeGreaterThanOrEqual(0);
    // Timed when it was answered: after it was sent, before now.
    expect(Date.parse(String(a.time))).toBeGreaterThanOrEqual(before);
    expect(Date.parse(String(a.time))).toBeLessThanOrEqual(Date.now());
    expect(JSON.stringify(a)).not.toContain('?');
  });
});

describe('/metrics', () => {
  it('exposes the SPEC metrics with bounded labels', async () => {
    expect((await call('/api/items/1', { 'x-api-key': viewer.secret })).status).toBe(200);
    expect((await call('/api/items/1', { 'x-api-key': 'kg_malformed' })).status).toBe(401);
    expect((await call('/api/items/1', { 'x-api-key': limited.secret })).status).toBe(200);
    expect((await call('/api/items/1', { 'x-api-key': limited.secret })).status).toBe(429);
    expect((await call('/api/down', { 'x-api-key': viewer.secret })).status).toBe(502);
    const text = await metricsText();
    for (const [name, type] of [
      ['keygate_requests_total', 'counter'],
      ['keygate_request_duration_seconds', 'histogram'],
      ['keygate_auth_failures_total', 'counter'],
      ['keygate_rate_limited_total', 'counter'],
      ['keygate_upstream_errors_total', 'counter'],
      ['keygate_credential_expiry_timestamp_seconds', 'gauge'],
      ['keygate_config_reloads_total', 'counter'],
    ]) {
      expect(text).toContain(`# TYPE ${name} ${type}`);
    }
    expect(sample(text, 'keygate_requests_total', { account: 'svc-observed', auth: 'api-key', outcome: 'allowed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'keygate_requests_total', { account: '', auth: 'api-key', outcome: 'unauthenticated' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'keygate_requests_total', { account: 'svc-limited', auth: 'api-key', outcome: 'rate_limited' })).toBe(1);
    expect(sample(text, 'keygate_request_duration_seconds_count', { outcome: 'allowed' })).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^keygate_request_duration_seconds_bucket\{le="0\.005",outcome="allowed",protocol="http\/1\.1"\} \d+$/m);
    // The protocol is a label of its own, from a fixed set.
    expect(sample(text, 'keygate_requests_total', { account: 'svc-observed', auth: 'api-key', outcome: 'allowed', protocol: 'http/1.1' })).toBeGreaterThanOrEqual(1);
    expect(text).toContain('# TYPE keygate_open_tunnels gauge');
    expect(sample(text, 'keygate_auth_failures_total', { reason: 'token_malformed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'keygate_rate_limited_total', { account: 'svc-limited' })).toBe(1);
    expect(sample(text, 'keygate_upstream_errors_total', { reason: 'refused' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'keygate_config_reloads_total', { result: 'rejected' })).toBe(0);
    expect(text).toMatch(/^keygate_config_reloads_total\{result="success"\} \d+$/m);
  });

  it("exports each account's soonest end; per credential only inside its warning window", async () => {
    const text = await metricsText();
    const at = sample(text, 'keygate_credential_expiry_timestamp_seconds', { account: 'svc-observed', credential: 'soonest' });
    const expected = Date.now() / 1000 + 30 * 86_400;
    expect(Math.abs(at - expected)).toBeLessThan(600);
    // 30 days out is outside the default warnBefore (14d); a credential without an end never
    // has a series: the series stay bounded whatever the inventory's size.
    expect(text).not.toContain(`credential="${expiring.id}"`);
    expect(text).not.toContain(`credential="${viewer.id}"`);
  });

  it('never takes a label value from a request path, host or header', async () => {
    const marker = randomUUID();
    await call(`/api/items/${marker}`, { 'x-api-key': viewer.secret, 'x-request-id': `id-${marker}` });
    await call(`/nothing-${marker}`, { 'x-api-key': viewer.secret, 'user-agent': `ua-${marker}` });
    await call(`/api/items/1`, { 'x-api-key': `kg_${marker}` });
    await request({ port: proxy.port, ca: env.serverCa.certPem, host: `h-${marker}.api.test`, path: `/healthz/${marker}` });
    const text = await metricsText();
    expect(text).not.toContain(marker);
    // The twin: account names, which come from the store, do appear.
    expect(text).toContain('account="svc-observed"');
  });
});

describe('health', () => {
  it('/healthz and /readyz answer 200 while serving; anything else on the admin listener is 404', async () => {
    const health = await adminGet(proxy.adminPort, '/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
    const ready = await adminGet(proxy.adminPort, '/readyz');
    expect(ready.status).toBe(200);
    expect((await adminGet(proxy.adminPort, '/nothing')).status).toBe(404);
  });
});

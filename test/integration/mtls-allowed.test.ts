// A client certificate bound to an account gets through the clientauth host with the
// account's identity and Envoy's x-forwarded-client-cert at the upstream, whatever the client
// sent in that header; its scopes and rate limits apply per certificate credential. Twins:
// the same request without the certificate, outside the scopes, past the limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintClient, type Issued } from '../helpers/pki.js';
import { code, mtls, ops, seed } from './mtls-support.js';
import { awaitAudit } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let client: Issued;
let limited: Issued;

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ policies: { default: { rate: '1000/s', burst: 1000 }, tight: { rate: '1/h', burst: 2 } } });
  client = await mintClient(env.clientCa.authority, { commonName: 'billing, "eu" worker', uris: ['spiffe://example.test/ns/billing/sa/worker'], dns: ['worker.billing.svc'] });
  limited = await mintClient(env.clientCa.authority, { commonName: 'limited' });
  await seed(env, (data, ctx) => {
    ops.account(data, ctx, { name: 'billing' });
    ops.bind(data, ctx, { account: 'billing', match: 'fingerprint', value: client.fingerprint, nickname: 'worker' });
    ops.bind(data, ctx, { account: 'billing', match: 'fingerprint', value: limited.fingerprint, policy: 'tight' });
  });
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

describe('a bound client certificate', () => {
  it('is forwarded with the account identity and XFCC; a forged XFCC never arrives', async () => {
    const before = env.upstream.received.length;
    const res = await mtls(env, { port: proxy.port, cert: client, headers: { 'x-forwarded-client-cert': 'Hash=00;Subject="CN=admin"', 'x-keygate-account': 'admin' } });
    expect(res.status).toBe(200);
    const got = env.upstream.received[before]!;
    expect(got.headers['x-keygate-auth']).toBe('mtls');
    expect(got.headers['x-keygate-account']).toBe('billing');
    expect(got.headers['x-keygate-credential']).toBe(`sha256:${client.fingerprint}`);
    expect(got.headers['x-keygate-scopes']).toBe('items:read');
    // One XFCC header, ours: the subject in RFC 2253 order with its comma and quotes escaped.
    expect(got.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-forwarded-client-cert')).toHaveLength(1);
    expect(got.headers['x-forwarded-client-cert']).toBe(
      `Hash=${client.fingerprint};Subject="CN=billing\\\\, \\\\\\"eu\\\\\\" worker";URI=spiffe://example.test/ns/billing/sa/worker;DNS=worker.billing.svc`,
    );
    const audit = await awaitAudit(env.auditFile, (e) => e.requestId === res.headers['x-request-id']);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ auth: 'mtls', account: 'billing', credential: `sha256:${client.fingerprint}`, decision: 'allow' });
  });

  it('without the certificate the same request is refused and reaches no upstream', async () => {
    const before = env.upstream.received.length;
    const res = await mtls(env, { port: proxy.port, headers: { 'x-forwarded-client-cert': `Hash=${client.fingerprint}` } });
    expect(res.status).toBe(401);
    expect(code(res)).toBe('KG_ERR_CERT_MISSING');
    expect(res.headers['www-authenticate']).toBe('ClientCertificate realm="keygate"');
    expect(env.upstream.received.length).toBe(before);
  });

  it("is held to the account's scopes: 403 outside them", async () => {
    const before = env.upstream.received.length;
    const res = await mtls(env, { port: proxy.port, cert: client, method: 'POST', path: '/api/items' });
    expect(res.status).toBe(403);
    expect(code(res)).toBe('KG_ERR_SCOPE_DENIED');
    expect(env.upstream.received.length).toBe(before);
  });

  it("has its own rate limit: the binding's policy stops it, other certificates keep going", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await mtls(env, { port: proxy.port, cert: limited })).status);
    expect(statuses).toEqual([200, 200, 429]);
    const last = await mtls(env, { port: proxy.port, cert: limited });
    expect(last.headers['retry-after']).toBeDefined();
    expect((await mtls(env, { port: proxy.port, cert: client })).status).toBe(200);
  });
});

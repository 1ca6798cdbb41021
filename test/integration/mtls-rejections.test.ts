// Every way a client certificate fails on the clientauth host ends the same way: the handshake
// completes, the request gets a 401 problem+json naming the reason, nothing reaches the
// upstream, the failure is counted in keygate_auth_failures_total{reason} and audited. The
// twin: a bound, current certificate from the same CA passes with the CRL in force.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintCa, mintClient, mintCrl, mintExpiredClient, type Issued } from '../helpers/pki.js';
import { authFailures, code, mtls, ops, seed } from './mtls-support.js';
import { awaitAudit } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
const certs: Record<string, Issued> = {};

beforeAll(async () => {
  env = await createTestEnv();
  const stranger = await mintCa('stranger CA');
  certs.good = await mintClient(env.clientCa.authority, { commonName: 'good' });
  certs.untrusted = await mintClient(stranger.authority, { commonName: 'good' });
  certs.expired = await mintExpiredClient(env.clientCa.authority, { commonName: 'good' });
  certs.revoked = await mintClient(env.clientCa.authority, { commonName: 'good' });
  certs.unbound = await mintClient(env.clientCa.authority, { commonName: 'nobody' });
  writeFileSync(join(env.dir, 'client-ca.crl'), await mintCrl(env.clientCa.authority, [certs.revoked.serial]));
  env.writeConfig({ listen: { clientAuth: { crl: 'client-ca.crl' } } });
  // Bound by CN: the untrusted, expired and revoked certificates all carry CN=good, so only
  // the TLS verdict can be what refuses them.
  await seed(env, (data, ctx) => {
    ops.account(data, ctx, { name: 'svc' });
    ops.bind(data, ctx, { account: 'svc', match: 'cn', value: 'good' });
  });
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

describe('client certificate rejections', () => {
  it('admits a bound, current certificate while the CRL is in force', async () => {
    const res = await mtls(env, { port: proxy.port, cert: certs.good });
    expect(res.status).toBe(200);
    expect(env.upstream.received.at(-1)!.headers['x-keygate-account']).toBe('svc');
  });

  it.each([
    ['no certificate', undefined, 'KG_ERR_CERT_MISSING', 'cert_missing'],
    ['a certificate from an untrusted CA', 'untrusted', 'KG_ERR_CERT_UNTRUSTED', 'cert_untrusted'],
    ['an expired certificate', 'expired', 'KG_ERR_CERT_EXPIRED', 'cert_expired'],
    ['a certificate revoked by the CRL', 'revoked', 'KG_ERR_CERT_REVOKED', 'cert_revoked'],
    ['a trusted certificate bound to no account', 'unbound', 'KG_ERR_CERT_UNBOUND', 'cert_unbound'],
  ])('refuses %s with 401, counts and audits it', async (_name, which, errorCode, reason) => {
    const before = env.upstream.received.length;
    const counted = await authFailures(proxy, reason);
    const res = await mtls(env, { port: proxy.port, ...(which ? { cert: certs[which] } : {}) });
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.headers['www-authenticate']).toBe('ClientCertificate realm="keygate"');
    expect(code(res)).toBe(errorCode);
    expect(env.upstream.received.length).toBe(before);
    expect(await authFailures(proxy, reason)).toBe(counted + 1);
    const audit = await awaitAudit(env.auditFile, (e) => e.requestId === res.headers['x-request-id']);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ event: 'request', auth: 'mtls', status: 401, decision: 'deny', reason: errorCode, account: null });
  });
});

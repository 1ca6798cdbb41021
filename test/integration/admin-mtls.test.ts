// The admin API over TLS (admin.tls set): a client certificate verified against
// listen.clientAuth.ca and bound to an account holding keygate:admin is a credential like an
// admin token; a certificate bound to another account gets 403; untrusted or unbound
// certificates and no credential at all get 401. A new client CA applies to the admin
// listener without a restart.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnv, eventually, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintCa, mintClient, type Issued } from '../helpers/pki.js';
import { awaitAudit, seedToken, writeAtomic } from './support.js';

// Steps run CLI children (a node start-up each): allow for a busy machine.
vi.setConfig({ testTimeout: 60_000 });

let env: TestEnv;
let proxy: ChildProxy;
let adminToken: { secret: string; id: string };
let adminCert: Issued;
let readerCert: Issued;

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ admin: { tls: { cert: 'server.crt', key: 'server.key' } } });
  adminToken = await seedToken(env, 'ops', { roles: ['admin'] });
  await seedToken(env, 'reader', { roles: ['viewer'] });
  adminCert = await mintClient(env.clientCa.authority, { commonName: 'ops-automation' });
  readerCert = await mintClient(env.clientCa.authority, { commonName: 'reader-automation' });
  proxy = await env.startChild();
  for (const [account, cert] of [['ops', adminCert], ['reader', readerCert]] as const) {
    const r = await admin('POST', '/admin/v1/certificates', { token: adminToken.secret, body: { account, certificate: cert.certPem } });
    if (r.status !== 201) throw new Error(`bind failed: ${r.body}`);
  }
  // Both bindings are known to the proxy before any test relies on them.
  await eventually(async () => (await admin('GET', '/admin/v1/accounts', { cert: readerCert })).status === 403, 1_000);
}, 120_000); // several CLI children: slow on a busy machine
afterAll(() => env.cleanup());

function admin(method: string, path: string, opts: { cert?: Issued; token?: string; body?: unknown } = {}) {
  return request({
    port: proxy.adminPort,
    servername: 'localhost',
    ca: env.serverCa.certPem,
    method,
    path,
    cert: opts.cert?.certPem,
    key: opts.cert?.keyPem,
    headers: { ...(opts.token ? { 'x-api-key': opts.token } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
}

describe('admin API with client certificates', () => {
  it('admits a certificate bound to an account with keygate:admin, and audits it as mtls', async () => {
    await eventually(async () => (await admin('GET', '/admin/v1/accounts', { cert: adminCert })).status === 200, 1_000);
    const r = await admin('POST', '/admin/v1/accounts', { cert: adminCert, body: { name: 'made-over-mtls', roles: ['viewer'] } });
    expect(r.status).toBe(201);
    const [e] = await awaitAudit(env.auditFile, (x) => x.event === 'account.created' && x.target === 'made-over-mtls');
    expect(e).toMatchObject({ actor: 'admin:ops', auth: 'mtls', credential: `sha256:${adminCert.fingerprint}` });
  });

  it('403 for a certificate bound to an account without keygate:admin', async () => {
    const r = await admin('GET', '/admin/v1/accounts', { cert: readerCert });
    expect(r.status).toBe(403);
    expect(r.json().code).toBe('KG_ERR_SCOPE_DENIED');
  });

  it('401 for a trusted certificate bound to no account', async () => {
    const stray = await mintClient(env.clientCa.authority, { commonName: 'stray' });
    const r = await admin('GET', '/admin/v1/accounts', { cert: stray });
    expect(r.status).toBe(401);
    expect(r.json().code).toBe('KG_ERR_CERT_UNBOUND');
  });

  it('401 for a certificate of an untrusted CA, and 401 with no credential at all', async () => {
    const otherCa = await mintCa('not trusted');
    const foreign = await mintClient(otherCa.authority, { commonName: 'ops-automation' });
    const untrusted = await admin('GET', '/admin/v1/accounts', { cert: foreign });
    expect(untrusted.status).toBe(401);
    expect(untrusted.json().code).toBe('KG_ERR_CERT_UNTRUSTED');
    const none = await admin('GET', '/admin/v1/accounts');
    expect(none.status).toBe(401);
    expect(none.json().code).toBe('KG_ERR_CREDENTIAL_MISSING');
    expect(none.headers['www-authenticate']).toBe('ClientCertificate realm="keygate-admin"');
  });

  it('an admin token works over TLS too', async () => {
    const r = await admin('GET', '/admin/v1/tokens', { token: adminToken.secret });
    expect(r.status).toBe(200);
  });

  it('refuses the certificate within 1 s once its account is disabled', async () => {
    const second = await mintClient(env.clientCa.authority, { commonName: 'ops2' });
    expect((await admin('POST', '/admin/v1/accounts', { token: adminToken.secret, body: { name: 'ops2', roles: ['admin'] } })).status).toBe(201);
    expect((await admin('POST', '/admin/v1/certificates', { token: adminToken.secret, body: { account: 'ops2', certificate: second.certPem } })).status).toBe(201);
    await eventually(async () => (await admin('GET', '/admin/v1/accounts', { cert: second })).status === 200, 1_000);
    expect((await admin('POST', '/admin/v1/accounts/ops2/disable', { token: adminToken.secret })).status).toBe(200);
    await eventually(async () => (await admin('GET', '/admin/v1/accounts', { cert: second })).json().code === 'KG_ERR_ACCOUNT_DISABLED', 1_000);
  });

  it('trusts a client CA added to listen.clientAuth.ca without a restart', async () => {
    const newCa = await mintCa('second client CA');
    const cert = await mintClient(newCa.authority, { commonName: 'from the new CA' });
    expect((await admin('POST', '/admin/v1/certificates', { token: adminToken.secret, body: { account: 'ops', certificate: cert.certPem } })).status).toBe(201);
    expect((await admin('GET', '/admin/v1/accounts', { cert })).json().code).toBe('KG_ERR_CERT_UNTRUSTED');
    writeAtomic(join(env.dir, 'client-ca.crt'), env.clientCa.certPem + newCa.certPem);
    await eventually(async () => (await admin('GET', '/admin/v1/accounts', { cert })).status === 200, 2_000);
    // The first CA is still trusted.
    expect((await admin('GET', '/admin/v1/accounts', { cert: adminCert })).status).toBe(200);
  });
});

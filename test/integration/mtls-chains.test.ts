// Trust beyond one CA: a list of client CAs, a client that sends its intermediate (leaf signed
// by an intermediate signed by a configured root), and CRLs along such a chain. Node checks
// revocation for every certificate of the chain once any CRL is configured
// (X509_V_FLAG_CRL_CHECK_ALL), so each CA in the chain needs its own current CRL; keygate
// refuses a configuration that leaves a configured CA without one.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintCa, mintClient, mintCrl, mintIntermediate, mintStaleCrl, type Authority, type Issued } from '../helpers/pki.js';
import { code, metricsText, mtls, ops, seed } from './mtls-support.js';
import { logLines, sample, writeAtomic } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let rootB: Issued & { authority: Authority };
let interB: Issued & { authority: Authority };
let fromA: Issued;
let viaInter: Issued;
let stranger: Issued;

const write = (name: string, text: string) => writeAtomic(join(env.dir, name), text);
const withChain = (leaf: Issued) => ({ ...leaf, chainPem: interB.certPem });

const RELOADED = 'config reloaded';
const REJECTED = 'config change rejected; keeping the previous state';

/** Rewrites keygate.yaml under the running binary; true when its watcher applied it, false when refused. */
async function reconfigure(clientAuth: Record<string, unknown>): Promise<boolean> {
  const seen = logLines(proxy).length;
  env.writeConfig({ listen: { clientAuth: { ca: ['client-ca.crt', 'root-b.crt'], ...clientAuth } } });
  let outcome: boolean | undefined;
  await eventually(() => {
    const line = logLines(proxy)
      .slice(seen)
      .find((l) => l.source === 'config' && (l.msg === RELOADED || l.msg === REJECTED));
    outcome = line === undefined ? undefined : line.msg === RELOADED;
    return outcome !== undefined;
  }, 5_000);
  return outcome!;
}

beforeAll(async () => {
  env = await createTestEnv();
  rootB = await mintCa('company root CA');
  interB = await mintIntermediate(rootB.authority, 'company issuing CA');
  write('root-b.crt', rootB.certPem);
  fromA = await mintClient(env.clientCa.authority, { commonName: 'chain-client' });
  viaInter = await mintClient(interB.authority, { commonName: 'chain-client' });
  stranger = await mintClient((await mintCa('stranger')).authority, { commonName: 'chain-client' });
  await seed(env, (data, ctx) => {
    ops.account(data, ctx, { name: 'svc' });
    ops.bind(data, ctx, { account: 'svc', match: 'cn', value: 'chain-client' });
  });
  env.writeConfig({ listen: { clientAuth: { ca: ['client-ca.crt', 'root-b.crt'] } } });
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

describe('a list of client CAs and intermediates', () => {
  it('admits a certificate from either CA of the list', async () => {
    expect((await mtls(env, { port: proxy.port, cert: fromA })).status).toBe(200);
    expect((await mtls(env, { port: proxy.port, cert: withChain(viaInter) })).status).toBe(200);
  });

  it('refuses a leaf whose client does not send the intermediate, and a CA not in the list', async () => {
    const missing = await mtls(env, { port: proxy.port, cert: viaInter });
    expect([missing.status, code(missing)]).toEqual([401, 'KG_ERR_CERT_UNTRUSTED']);
    const other = await mtls(env, { port: proxy.port, cert: stranger });
    expect([other.status, code(other)]).toEqual([401, 'KG_ERR_CERT_UNTRUSTED']);
  });
});

describe('CRLs along a chain', () => {
  it('refuses to load a CRL set that leaves a configured CA without its CRL', async () => {
    write('a.crl', await mintCrl(env.clientCa.authority, []));
    expect(await reconfigure({ crl: ['a.crl'] })).toBe(false);
    const check = await env.cli(['check']);
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/keygate\.yaml:\d+:\d+: .*no CRL from client CA "CN=company root CA"/);
    // The previous material keeps serving.
    expect((await mtls(env, { port: proxy.port, cert: withChain(viaInter) })).status).toBe(200);
  });

  it("without the intermediate's CRL, certificates it issued are refused (the chain needs every CRL)", async () => {
    write('b-root.crl', await mintCrl(rootB.authority, []));
    expect(await reconfigure({ crl: ['a.crl', 'b-root.crl'] })).toBe(true);
    expect((await mtls(env, { port: proxy.port, cert: fromA })).status).toBe(200);
    const res = await mtls(env, { port: proxy.port, cert: withChain(viaInter) });
    expect([res.status, code(res)]).toEqual([401, 'KG_ERR_CERT_UNTRUSTED']);
  });

  it("with the root's and the intermediate's CRL the chain passes", async () => {
    write('b-inter.crl', await mintCrl(interB.authority, []));
    expect(await reconfigure({ crl: ['a.crl', 'b-root.crl', 'b-inter.crl'] })).toBe(true);
    expect((await mtls(env, { port: proxy.port, cert: withChain(viaInter) })).status).toBe(200);
  });

  it("the intermediate's CRL revokes the leaf", async () => {
    write('b-inter.crl', await mintCrl(interB.authority, [viaInter.serial]));
    expect(await reconfigure({ crl: ['a.crl', 'b-root.crl', 'b-inter.crl'] })).toBe(true);
    const res = await mtls(env, { port: proxy.port, cert: withChain(viaInter) });
    expect([res.status, code(res)]).toEqual([401, 'KG_ERR_CERT_REVOKED']);
  });

  it("the root's CRL revokes the intermediate, and with it every leaf under it", async () => {
    const other = await mintClient(interB.authority, { commonName: 'chain-client' });
    write('b-inter.crl', await mintCrl(interB.authority, []));
    write('b-root.crl', await mintCrl(rootB.authority, [interB.serial]));
    expect(await reconfigure({ crl: ['a.crl', 'b-root.crl', 'b-inter.crl'] })).toBe(true);
    const res = await mtls(env, { port: proxy.port, cert: withChain(other) });
    expect([res.status, code(res)]).toEqual([401, 'KG_ERR_CERT_REVOKED']);
    expect((await mtls(env, { port: proxy.port, cert: fromA })).status).toBe(200);
  });

  it('a CRL past its nextUpdate refuses every certificate it covers, and its nextUpdate is exported', async () => {
    write('b-root.crl', await mintStaleCrl(rootB.authority));
    write('b-inter.crl', await mintCrl(interB.authority, []));
    expect(await reconfigure({ crl: ['a.crl', 'b-root.crl', 'b-inter.crl'] })).toBe(true);
    const res = await mtls(env, { port: proxy.port, cert: withChain(await mintClient(interB.authority, { commonName: 'chain-client' })) });
    expect([res.status, code(res)]).toEqual([401, 'KG_ERR_CERT_UNTRUSTED']);
    expect((await mtls(env, { port: proxy.port, cert: fromA })).status).toBe(200);
    const nextUpdate = sample(await metricsText(proxy), 'keygate_certificate_expiry_timestamp_seconds', { kind: 'crl', subject: 'CN=company root CA' });
    expect(nextUpdate).toBeGreaterThan(0);
    expect(nextUpdate).toBeLessThan(Date.now() / 1000);
  });
});

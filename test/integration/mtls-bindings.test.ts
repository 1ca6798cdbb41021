// Bindings by subject CN and DNS SAN, which binding decides when several match, and the
// account and binding states that refuse a trusted, bound certificate: disabled account,
// account past its end date — with no fall-through to a broader binding. A binding whose own
// end date passes is in lifecycle-clock.test.ts, where the clock can be moved.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintClient, type Issued } from '../helpers/pki.js';
import { cliOk, code, mtls, ops, seed } from './mtls-support.js';

let env: TestEnv;
let proxy: ChildProxy;

beforeAll(async () => {
  env = await createTestEnv();
  await seed(env, (data, ctx) => {
    for (const name of ['by-cn', 'by-dns']) ops.account(data, ctx, { name });
    ops.account(data, ctx, { name: 'disabled' }, { disabled: true });
    ops.account(data, ctx, { name: 'ended', endDate: '2020-01-31' });
    ops.bind(data, ctx, { account: 'by-cn', match: 'cn', value: 'reporting-job' });
    ops.bind(data, ctx, { account: 'by-dns', match: 'dns', value: 'Worker.Example.Test' });
    ops.bind(data, ctx, { account: 'disabled', match: 'cn', value: 'disabled-job' });
    ops.bind(data, ctx, { account: 'ended', match: 'cn', value: 'ended-job' });
  });
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

async function call(cert: Issued): Promise<{ status: number; account: unknown; code: unknown }> {
  const before = env.upstream.received.length;
  const res = await mtls(env, { port: proxy.port, cert });
  const account = env.upstream.received.length > before ? env.upstream.received.at(-1)!.headers['x-keygate-account'] : undefined;
  return { status: res.status, account, code: res.status === 200 ? undefined : code(res) };
}

describe('CN and DNS bindings', () => {
  it('maps a certificate by its subject CN; another CN is unbound', async () => {
    expect(await call(await mintClient(env.clientCa.authority, { commonName: 'reporting-job' }))).toMatchObject({ status: 200, account: 'by-cn' });
    expect(await call(await mintClient(env.clientCa.authority, { commonName: 'reporting-job2' }))).toMatchObject({ status: 401, code: 'KG_ERR_CERT_UNBOUND' });
  });

  it('maps a certificate by a DNS SAN, case-insensitively; another name is unbound', async () => {
    expect(await call(await mintClient(env.clientCa.authority, { commonName: 'x', dns: ['other.example.test', 'worker.example.TEST'] }))).toMatchObject({ status: 200, account: 'by-dns' });
    expect(await call(await mintClient(env.clientCa.authority, { commonName: 'x', dns: ['worker.example.test.evil.test'] }))).toMatchObject({ status: 401, code: 'KG_ERR_CERT_UNBOUND' });
  });

  it('a DNS SAN binding beats a CN binding of the same certificate', async () => {
    expect(await call(await mintClient(env.clientCa.authority, { commonName: 'reporting-job', dns: ['worker.example.test'] }))).toMatchObject({ status: 200, account: 'by-dns' });
  });
});

describe('states that refuse a bound certificate', () => {
  it('a disabled account: 401 KG_ERR_ACCOUNT_DISABLED, then admitted again once enabled', async () => {
    const cert = await mintClient(env.clientCa.authority, { commonName: 'disabled-job' });
    expect(await call(cert)).toMatchObject({ status: 401, code: 'KG_ERR_ACCOUNT_DISABLED' });
    await cliOk(env, ['account', 'enable', 'disabled']);
    let r = await call(cert);
    await eventually(async () => (r = await call(cert)).status === 200, 2_000).catch(() => undefined);
    expect(r).toMatchObject({ status: 200, account: 'disabled' });
  });

  it('an account past its end date: 401 KG_ERR_ACCOUNT_ENDED', async () => {
    expect(await call(await mintClient(env.clientCa.authority, { commonName: 'ended-job' }))).toMatchObject({ status: 401, code: 'KG_ERR_ACCOUNT_ENDED' });
  });
});

// SPIFFE identities: URI SAN bindings with `*` (one segment) and `**` (any segments), their
// precedence (exact, then the most specific pattern), and the certificates that must not
// match: another trust domain, two segments where one is allowed, dot segments.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintClient } from '../helpers/pki.js';
import { bind, code, mtls, ops, seed } from './mtls-support.js';

let env: TestEnv;
let proxy: ChildProxy;

beforeAll(async () => {
  env = await createTestEnv();
  await seed(env, (data, ctx) => {
    for (const name of ['prod-workloads', 'any-workload', 'deployer', 'pinned']) ops.account(data, ctx, { name });
    ops.bind(data, ctx, { account: 'any-workload', match: 'uri', value: 'spiffe://td.test/ns/**' });
    ops.bind(data, ctx, { account: 'prod-workloads', match: 'uri', value: 'spiffe://td.test/ns/prod/sa/*' });
    ops.bind(data, ctx, { account: 'deployer', match: 'uri', value: 'spiffe://td.test/ns/prod/sa/deployer' });
  });
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

async function accountFor(uri: string): Promise<string | number> {
  const cert = await mintClient(env.clientCa.authority, { commonName: 'workload', uris: [uri] });
  const res = await mtls(env, { port: proxy.port, cert });
  if (res.status !== 200) return `${res.status} ${String(code(res))}`;
  return env.upstream.received.at(-1)!.headers['x-keygate-account'] as string;
}

describe('URI SAN bindings', () => {
  it.each([
    ['spiffe://td.test/ns/prod/sa/deployer', 'deployer', 'an exact binding beats every pattern'],
    ['spiffe://td.test/ns/prod/sa/builder', 'prod-workloads', '* matches one segment; the more specific pattern beats **'],
    ['spiffe://td.test/ns/prod/sa/builder/extra', 'any-workload', '* is one segment only; ** takes the rest'],
    ['spiffe://td.test/ns/dev/sa/x', 'any-workload', '** spans segments'],
  ])('%s → %s (%s)', async (uri, account) => {
    expect(await accountFor(uri)).toBe(account);
  });

  it.each([
    ['spiffe://other.test/ns/prod/sa/deployer', 'another trust domain'],
    ['spiffe://td.test/ns', 'nothing under /ns/ (** needs a segment at the end)'],
    ['spiffe://td.test/nsx/prod', 'a segment that only starts like one'],
    ['spiffe://td.test/ns/../admin', 'a dot segment never matches a wildcard'],
  ])('%s matches no binding: 401 (%s)', async (uri) => {
    expect(await accountFor(uri)).toBe('401 KG_ERR_CERT_UNBOUND');
  });

  it('the URI reaches the upstream in XFCC', async () => {
    await accountFor('spiffe://td.test/ns/prod/sa/builder');
    expect(env.upstream.received.at(-1)!.headers['x-forwarded-client-cert']).toMatch(/;URI=spiffe:\/\/td\.test\/ns\/prod\/sa\/builder$/);
  });

  it('a fingerprint binding beats the URI bindings of the same certificate', async () => {
    const cert = await mintClient(env.clientCa.authority, { commonName: 'workload', uris: ['spiffe://td.test/ns/prod/sa/deployer'] });
    await bind(env, 'pinned', 'fingerprint', cert.fingerprint);
    // The proxy picks up the store change within a second.
    let account: unknown;
    await eventually(async () => {
      const res = await mtls(env, { port: proxy.port, cert });
      account = env.upstream.received.at(-1)!.headers['x-keygate-account'];
      return res.status === 200 && account === 'pinned';
    }, 2_000).catch(() => undefined);
    expect(account).toBe('pinned');
  });

  it('refuses to bind a pattern whose wildcard is not a whole segment', async () => {
    const r = await env.cli(['cert', 'bind', '--account', 'pinned', '--uri', 'spiffe://td.test/ns/prod-*']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^keygate: .*must be whole segments/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

// 421: the TLS server name decides how a connection authenticates, so a Host header naming a
// host of the other mode must not move a request across (a token client reaching the
// client-certificate host, or the reverse). Hosts of the same mode, with or without a port,
// are fine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_HOST, createTestEnv, MTLS_HOST, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, metricsOf, sample, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let secret: string;

beforeAll(async () => {
  env = await createTestEnv();
  secret = (await seedToken(env, 'svc', { roles: ['viewer'] })).secret;
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

async function call(servername: string, host: string) {
  const before = env.upstream.received.length;
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, servername, host, path: '/api/items/1', headers: { 'x-api-key': secret } });
  return { res, reached: env.upstream.received.length - before };
}

describe('Host and SNI of different modes', () => {
  it.each([
    [API_HOST, MTLS_HOST],
    [API_HOST, 'CLIENTAUTH.API.TEST'],
    [API_HOST, `${MTLS_HOST}:8443`],
    [MTLS_HOST, API_HOST],
    [MTLS_HOST, `${API_HOST}:443`],
  ])('SNI %s with Host %s: 421, nothing forwarded', async (sni, host) => {
    const before = sample(await metricsOf(proxy), 'keygate_requests_total', { account: '', auth: '', outcome: 'misdirected' });
    const { res, reached } = await call(sni, host);
    expect(res.status).toBe(421);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json().code).toBe('KG_ERR_MISDIRECTED');
    expect(reached).toBe(0);
    expect(sample(await metricsOf(proxy), 'keygate_requests_total', { account: '', auth: '', outcome: 'misdirected' })).toBe(before + 1);
  });
});

describe('Host and SNI of the same mode', () => {
  it.each([
    [API_HOST, API_HOST],
    [API_HOST, `${API_HOST}:8443`],
    [API_HOST, 'API.TEST:443'],
    [API_HOST, 'other.api.test'],
    [API_HOST, '127.0.0.1:8443'],
  ])('SNI %s with Host %s: served', async (sni, host) => {
    const { res, reached } = await call(sni, host);
    expect(res.status).toBe(200);
    expect(reached).toBe(1);
    expect(env.upstream.received.at(-1)!.headers.host).toBe(host);
  });
});

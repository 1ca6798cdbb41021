// listen.clientAuth.port: a second TLS port where every connection is in client-certificate
// mode whatever the SNI (or none, as for clients that connect by IP address). The main port
// keeps choosing by SNI.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { seedToken } from './support.js';
import { mintClient, type Issued } from '../helpers/pki.js';
import { API_HOST, code, mtls, ops, seed } from './mtls-support.js';

let env: TestEnv;
let proxy: ChildProxy;
let port: number;
let cert: Issued;
let token: { secret: string };

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ listen: { clientAuth: { port: 0 } } });
  cert = await mintClient(env.clientCa.authority, { commonName: 'port-client' });
  await seed(env, (data, ctx) => {
    ops.account(data, ctx, { name: 'svc' });
    ops.bind(data, ctx, { account: 'svc', match: 'fingerprint', value: cert.fingerprint });
  });
  token = await seedToken(env, 'svc');
  proxy = await env.startChild();
  port = proxy.clientAuthPort!;
});
afterAll(() => env.cleanup());

/** GET over the dedicated port without SNI (connecting by IP address). */
function bySocket(withCert: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: env.serverCa.certPem, checkServerIdentity: () => undefined, ...(withCert ? { cert: cert.certPem, key: cert.keyPem } : {}) }, () =>
      s.write('GET /api/items/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    );
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
    s.on('error', reject);
  });
}

describe('the dedicated client-certificate port', () => {
  it('listens on its own port', () => {
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(proxy.port);
  });

  it('admits a bound certificate without SNI, and refuses the same connection without it', async () => {
    const before = env.upstream.received.length;
    expect(await bySocket(true)).toBe(200);
    expect(env.upstream.received[before]!.headers['x-keygate-auth']).toBe('mtls');
    expect(await bySocket(false)).toBe(401);
    expect(env.upstream.received.length).toBe(before + 1);
  });

  it('is client-certificate mode even for an API host name: a token does not get in', async () => {
    const res = await mtls(env, { port, servername: API_HOST, headers: { 'x-api-key': token.secret } });
    expect([res.status, code(res)]).toEqual([401, 'KG_ERR_CERT_MISSING']);
    expect((await mtls(env, { port, servername: API_HOST, cert })).status).toBe(200);
  });

  it('the main port still decides by SNI', async () => {
    const res = await mtls(env, { port: proxy.port, servername: API_HOST, headers: { 'x-api-key': token.secret } });
    expect(res.status).toBe(200);
    expect(env.upstream.received.at(-1)!.headers['x-keygate-auth']).toBe('api-key');
  });
});

// The SNI host decides the way in, and only the SNI host. A client certificate on an API-key
// host is never used: without a token it is a 401, with one the token decides and no XFCC is
// sent. A token on the clientauth host is no substitute for a certificate. And a TLS session
// cannot carry a verdict from one handshake to the next: keygate resumes no sessions, so a
// session made with a certificate (or on the other host) must present its certificate again.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { seedToken } from './support.js';
import { mintClient, type Issued } from '../helpers/pki.js';
import { API_HOST, code, MTLS_HOST, mtls, ops, seed } from './mtls-support.js';

let env: TestEnv;
let proxy: ChildProxy;
let cert: Issued;
let token: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  cert = await mintClient(env.clientCa.authority, { commonName: 'svc-client' });
  await seed(env, (data, ctx) => {
    ops.account(data, ctx, { name: 'svc' });
    ops.bind(data, ctx, { account: 'svc', match: 'fingerprint', value: cert.fingerprint });
  });
  token = await seedToken(env, 'svc');
  proxy = await env.startChild();
});
afterAll(() => env.cleanup());

describe('the API-key host ignores client certificates', () => {
  it('a bound certificate without a token gets 401 KG_ERR_CREDENTIAL_MISSING', async () => {
    const before = env.upstream.received.length;
    const res = await mtls(env, { port: proxy.port, cert, servername: API_HOST });
    expect(res.status).toBe(401);
    expect(code(res)).toBe('KG_ERR_CREDENTIAL_MISSING');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(env.upstream.received.length).toBe(before);
  });

  it('with a token as well, the token decides and no certificate identity is forwarded', async () => {
    const before = env.upstream.received.length;
    const res = await mtls(env, { port: proxy.port, cert, servername: API_HOST, headers: { 'x-api-key': token.secret } });
    expect(res.status).toBe(200);
    const got = env.upstream.received[before]!.headers;
    expect(got['x-keygate-auth']).toBe('api-key');
    expect(got['x-keygate-credential']).toBe(token.id);
    expect(got['x-forwarded-client-cert']).toBeUndefined();
  });

  it('a connection without SNI is an API-key connection, certificate or not', async () => {
    // Node sends no SNI when connecting to an IP address.
    expect((await once({ version: 'TLSv1.3', withCert: true, host: '127.0.0.1' })).status).toBe(401);
    expect((await once({ version: 'TLSv1.3', withCert: true, host: '127.0.0.1', headers: `x-api-key: ${token.secret}\r\n` })).status).toBe(200);
    expect(env.upstream.received.at(-1)!.headers['x-keygate-auth']).toBe('api-key');
  });
});

describe('the clientauth host wants the certificate', () => {
  it('a token without a certificate gets 401 KG_ERR_CERT_MISSING', async () => {
    const res = await mtls(env, { port: proxy.port, headers: { 'x-api-key': token.secret } });
    expect(res.status).toBe(401);
    expect(code(res)).toBe('KG_ERR_CERT_MISSING');
  });

  it('the Host header cannot switch the mode: 421 either way', async () => {
    expect((await mtls(env, { port: proxy.port, cert, servername: API_HOST, host: MTLS_HOST })).status).toBe(421);
    expect((await mtls(env, { port: proxy.port, cert, host: API_HOST, headers: { 'x-api-key': token.secret } })).status).toBe(421);
  });
});

/** One raw HTTP/1.1 request over a fresh TLS connection; returns the status and the session to resume. */
function once(opts: { servername?: string; host?: string; version: tls.SecureVersion; withCert: boolean; session?: Buffer; headers?: string }): Promise<{ status: number; session?: Buffer; reused: boolean }> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = tls.connect({
      host: '127.0.0.1',
      port: proxy.port,
      ...(opts.servername ? { servername: opts.servername } : {}),
      ca: env.serverCa.certPem,
      minVersion: opts.version,
      maxVersion: opts.version,
      ...(opts.session ? { session: opts.session } : {}),
      ...(opts.withCert ? { cert: cert.certPem, key: cert.keyPem } : {}),
    });
    socket.on('session', (s: Buffer) => (session = s));
    let text = '';
    let reused = false;
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.write(`GET /api/items/1 HTTP/1.1\r\nHost: ${opts.host ?? opts.servername}\r\n${opts.headers ?? ''}Connection: close\r\n\r\n`);
    });
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 5 s')), 5_000);
    socket.on('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) return reject(new Error(`no HTTP answer: ${text.slice(0, 200)}`));
      // The client's view: a session ticket would let it skip the certificate next time.
      resolve({ status: Number(m[1]), session: session ?? socket.getSession(), reused });
    });
    socket.on('error', reject);
  });
}

describe('no TLS session resumption', () => {
  it.each(['TLSv1.2', 'TLSv1.3'] as const)('%s: a session made with the certificate does not admit a connection without it', async (version) => {
    const first = await once({ servername: MTLS_HOST, version, withCert: true });
    expect(first.status).toBe(200);
    const again = await once({ servername: MTLS_HOST, version, withCert: false, session: first.session });
    expect(again.reused).toBe(false);
    expect(again.status).toBe(401);
  });

  it.each(['TLSv1.2', 'TLSv1.3'] as const)('%s: a session made on the API-key host is not carried to the clientauth host', async (version) => {
    const first = await once({ servername: API_HOST, version, withCert: true, headers: `x-api-key: ${token.secret}\r\n` });
    expect(first.status).toBe(200);
    const again = await once({ servername: MTLS_HOST, version, withCert: false, session: first.session });
    expect(again.reused).toBe(false);
    expect(again.status).toBe(401);
  });
});

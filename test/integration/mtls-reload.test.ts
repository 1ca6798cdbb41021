// Certificates change under a running keygate: the server certificate is rotated, the client
// CA bundle and the CRL are replaced. New handshakes see the new material at once, open
// connections keep theirs, a broken or half-written file is refused (logged, counted) while
// the previous material keeps serving, and SIGHUP reloads what no file watcher can see.
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, readJsonLines, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintCa, mintClient, mintCrl, mintServer, type Issued } from '../helpers/pki.js';
import { API_HOST, MTLS_HOST, code, metricsText, mtls, ops, seed } from './mtls-support.js';
import { AUDIT_FLUSH_MS, adminGet, sample, seedToken, writeAtomic } from './support.js';

const HOSTS = [API_HOST, MTLS_HOST, 'localhost', '127.0.0.1'];

interface Served {
  status: number;
  /** SHA-256 of the certificate the server presented, lowercase hex. */
  served: string;
  localPort: number;
}

const fp = (c: X509Certificate) => c.fingerprint256.replace(/:/g, '').toLowerCase();

/** The server certificate each client connection got at its handshake. */
const servedBy = new WeakMap<TLSSocket, string>();

/** GET on the API host with a token, reporting which server certificate the connection has. */
function get(env: TestEnv, port: number, secret: string, agent: https.Agent | false, servername = API_HOST, cert?: Issued): Promise<Served> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, servername, path: '/api/items/1', headers: { host: servername, 'x-api-key': secret }, ca: env.serverCa.certPem, agent, timeout: 5_000, ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) },
      (res) => {
        const socket = res.socket as TLSSocket;
        const localPort = socket.localPort!;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, served: servedBy.get(socket) ?? '', localPort }));
      },
    );
    req.on('socket', (s: TLSSocket) => {
      if (!servedBy.has(s)) s.once('secureConnect', () => servedBy.set(s, fp(s.getPeerX509Certificate()!)));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function reloads(proxy: { adminPort: number }, result: 'success' | 'rejected'): Promise<number> {
  return sample(await metricsText(proxy), 'keygate_tls_reloads_total', { result });
}

describe('rotation and broken files', () => {
  let env: TestEnv;
  let proxy: ChildProxy;
  let token: { secret: string };
  let client: Issued;
  let current: string;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });

  beforeAll(async () => {
    env = await createTestEnv();
    client = await mintClient(env.clientCa.authority, { commonName: 'reload-client' });
    writeFileSync(join(env.dir, 'client.crl'), await mintCrl(env.clientCa.authority, []));
    env.writeConfig({ listen: { clientAuth: { crl: 'client.crl' } } });
    await seed(env, (data, ctx) => {
      ops.account(data, ctx, { name: 'svc' });
      ops.bind(data, ctx, { account: 'svc', match: 'cn', value: 'reload-client' });
    });
    token = await seedToken(env, 'svc');
    proxy = await env.startChild();
    current = fp(new X509Certificate(readFileSync(join(env.dir, 'server.crt'))));
  });
  afterAll(async () => {
    agent.destroy();
    await env.cleanup();
  });

  /** The problems of the first TLS rejection audited after line `since` of the audit file. */
  const rejectedTls = async (since: number): Promise<string[]> => {
    let found: Record<string, unknown> | undefined;
    await eventually(() => (found = readJsonLines(env.auditFile).slice(since).find((e) => e.event === 'config.rejected' && e.target === 'tls')) !== undefined, AUDIT_FLUSH_MS);
    return found!.problems as string[];
  };

  const install = (server: Issued, which: 'both' | 'cert' | 'key' = 'both') => {
    if (which !== 'key') writeAtomic(join(env.dir, 'server.crt'), server.certPem + env.serverCa.certPem);
    if (which !== 'cert') writeAtomic(join(env.dir, 'server.key'), server.keyPem);
  };

  it('a rotated server certificate: the open keep-alive connection keeps working, a new one sees the new certificate', async () => {
    const first = await get(env, proxy.port, token.secret, agent);
    expect(first).toMatchObject({ status: 200, served: current });
    const next = await mintServer(env.serverCa.authority, HOSTS);
    const ok = await reloads(proxy, 'success');
    install(next);
    await eventually(async () => (await reloads(proxy, 'success')) > ok && (await get(env, proxy.port, token.secret, false)).served === next.fingerprint);
    const again = await get(env, proxy.port, token.secret, agent);
    expect(again).toMatchObject({ status: 200, served: current, localPort: first.localPort });
    expect((await get(env, proxy.port, token.secret, false)).served).toBe(next.fingerprint);
    expect((await get(env, proxy.port, token.secret, false, MTLS_HOST, client)).served).toBe(next.fingerprint);
    current = next.fingerprint;
    const metric = sample(await metricsText(proxy), 'keygate_certificate_expiry_timestamp_seconds', { kind: 'server', subject: `CN=${API_HOST}` });
    expect(metric).toBe(Math.floor(next.notAfter.getTime() / 1000));
  });

  it('a broken certificate file is refused and counted; the previous certificate keeps serving', async () => {
    const rejected = await reloads(proxy, 'rejected');
    const since = readJsonLines(env.auditFile).length;
    writeAtomic(join(env.dir, 'server.crt'), '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
    await eventually(async () => (await reloads(proxy, 'rejected')) > rejected);
    expect(await get(env, proxy.port, token.secret, false)).toMatchObject({ status: 200, served: current });
    expect(String((await rejectedTls(since))[0])).toMatch(/server\.crt: not a valid PEM certificate/);
  });

  it('a half-done rotation (certificate replaced before the key) is refused until the key follows', async () => {
    const next = await mintServer(env.serverCa.authority, HOSTS);
    const rejected = await reloads(proxy, 'rejected');
    const since = readJsonLines(env.auditFile).length;
    install(next, 'cert');
    await eventually(async () => (await reloads(proxy, 'rejected')) > rejected);
    expect(String((await rejectedTls(since))[0])).toMatch(/server\.key does not belong to the certificate/);
    // Neither a mismatched pair nor nothing: the last good pair.
    expect(await get(env, proxy.port, token.secret, false)).toMatchObject({ status: 200, served: current });
    install(next, 'key');
    await eventually(async () => (await get(env, proxy.port, token.secret, false)).served === next.fingerprint);
    current = next.fingerprint;
  });

  it('a key file caught empty (truncated, not yet written) is refused, not installed', async () => {
    const rejected = await reloads(proxy, 'rejected');
    const keyFile = join(env.dir, 'server.key');
    const key = readFileSync(keyFile, 'utf8');
    writeFileSync(keyFile, '');
    await eventually(async () => (await reloads(proxy, 'rejected')) > rejected);
    expect(await get(env, proxy.port, token.secret, false)).toMatchObject({ status: 200, served: current });
    const ok = await reloads(proxy, 'success');
    writeFileSync(keyFile, key);
    await eventually(async () => (await reloads(proxy, 'success')) > ok);
    expect(await get(env, proxy.port, token.secret, false)).toMatchObject({ status: 200, served: current });
  });

  it('a new CRL applies to new handshakes', async () => {
    expect((await mtls(env, { port: proxy.port, cert: client })).status).toBe(200);
    writeAtomic(join(env.dir, 'client.crl'), await mintCrl(env.clientCa.authority, [client.serial]));
    await eventually(async () => code(await mtls(env, { port: proxy.port, cert: client })) === 'KG_ERR_CERT_REVOKED');
  });

  it('a new client CA bundle applies to new handshakes, and its expiry is exported', async () => {
    const nextCa = await mintCa('next client CA');
    const fromNext = await mintClient(nextCa.authority, { commonName: 'reload-client' });
    const fresh = await mintClient(env.clientCa.authority, { commonName: 'reload-client' });
    expect((await mtls(env, { port: proxy.port, cert: fresh })).status).toBe(200);
    // Both CAs, each with its CRL, then the bundle.
    writeAtomic(join(env.dir, 'client.crl'), (await mintCrl(env.clientCa.authority, [])) + (await mintCrl(nextCa.authority, [])));
    writeAtomic(join(env.dir, 'client-ca.crt'), nextCa.certPem);
    await eventually(async () => (await mtls(env, { port: proxy.port, cert: fromNext })).status === 200);
    expect(code(await mtls(env, { port: proxy.port, cert: fresh }))).toBe('KG_ERR_CERT_UNTRUSTED');
    const text = await metricsText(proxy);
    expect(sample(text, 'keygate_certificate_expiry_timestamp_seconds', { kind: 'client_ca', subject: 'CN=next client CA' })).toBe(Math.floor(nextCa.notAfter.getTime() / 1000));
    expect(sample(text, 'keygate_certificate_expiry_timestamp_seconds', { kind: 'client_ca', subject: 'CN=test client CA' })).toBe(0);
    expect(sample(text, 'keygate_certificate_expiry_timestamp_seconds', { kind: 'crl', subject: 'CN=next client CA' })).toBeGreaterThan(Date.now() / 1000);
  });
});

describe('child process: SIGHUP and Kubernetes-style mounts', () => {
  let env: TestEnv;
  let child: ChildProxy;
  let token: { secret: string };

  // tls/ looks like a Kubernetes Secret volume: tls.crt and tls.key are symlinks into ..data,
  // which points at a versioned folder; an update swaps ..data in one rename.
  const mount = (dir: string, version: string, server: Issued) => {
    mkdirSync(join(dir, version));
    writeFileSync(join(dir, version, 'tls.crt'), server.certPem + env.serverCa.certPem);
    writeFileSync(join(dir, version, 'tls.key'), server.keyPem, { mode: 0o600 });
    symlinkSync(version, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  };

  beforeAll(async () => {
    env = await createTestEnv();
    const tlsDir = join(env.dir, 'tls');
    mkdirSync(tlsDir);
    mount(tlsDir, '..v1', await mintServer(env.serverCa.authority, HOSTS));
    symlinkSync('..data/tls.crt', join(tlsDir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(tlsDir, 'tls.key'));
    // live/server.crt and live/server.key are symlinks into hidden/: the watcher looks at
    // live/, so a file replaced in hidden/ changes what keygate would read without an event.
    mkdirSync(join(env.dir, 'hidden'));
    mkdirSync(join(env.dir, 'live'));
    writeFileSync(join(env.dir, 'hidden', 'server.crt'), readFileSync(join(env.dir, 'server.crt')));
    writeFileSync(join(env.dir, 'hidden', 'server.key'), readFileSync(join(env.dir, 'server.key')), { mode: 0o600 });
    symlinkSync('../hidden/server.crt', join(env.dir, 'live', 'server.crt'));
    symlinkSync('../hidden/server.key', join(env.dir, 'live', 'server.key'));
    env.writeConfig({ listen: { tls: { cert: 'tls/tls.crt', key: 'tls/tls.key' } } });
    token = await seedToken(env, 'svc');
    child = await env.startChild();
  });
  afterAll(() => env.cleanup());

  it('a swapped ..data symlink is picked up by the file watcher', async () => {
    const next = await mintServer(env.serverCa.authority, HOSTS);
    mount(join(env.dir, 'tls'), '..v2', next);
    rmSync(join(env.dir, 'tls', '..v1'), { recursive: true });
    await eventually(async () => (await get(env, child.port, token.secret, false)).served === next.fingerprint, 3_000);
  });

  it('SIGHUP reloads certificates that changed where no watcher looks', async () => {
    await child.stop('SIGTERM');
    env.writeConfig({ listen: { tls: { cert: 'live/server.crt', key: 'live/server.key' } } });
    child = await env.startChild();
    const before = await get(env, child.port, token.secret, false);
    const next = await mintServer(env.serverCa.authority, HOSTS);
    writeAtomic(join(env.dir, 'hidden', 'server.key'), next.keyPem);
    writeAtomic(join(env.dir, 'hidden', 'server.crt'), next.certPem + env.serverCa.certPem);
    await new Promise((r) => setTimeout(r, 300));
    expect((await get(env, child.port, token.secret, false)).served).toBe(before.served);
    child.child.kill('SIGHUP');
    await eventually(async () => (await get(env, child.port, token.secret, false)).served === next.fingerprint, 3_000);
    const metrics = await adminGet(child.adminPort, '/metrics');
    expect(sample(metrics.body, 'keygate_config_reloads_total', { result: 'success' })).toBeGreaterThanOrEqual(1);
  });
});

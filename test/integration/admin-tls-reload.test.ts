// The admin listener's certificate reloads like the public one (SPEC §7): with admin.tls set,
// a replaced certificate and key are served on the next handshake while a connection opened
// before keeps working on the old one; a replacement whose key does not belong to the
// certificate is refused — counted as a rejected TLS reload and a rejected config reload,
// logged and audited — and the last good pair keeps serving. Both hold after keygate.yaml
// itself has been reloaded. On the built binary.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, readJsonLines, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintServer, type Issued } from '../helpers/pki.js';
import { AUDIT_FLUSH_MS, SETUP_TIMEOUT_MS, logLines, sample, writeAtomic } from './support.js';

const ADMIN_HOSTS = ['localhost', '127.0.0.1'];
const fp = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();

let env: TestEnv;
let proxy: ChildProxy;
/** Fingerprint of the admin certificate keygate should be serving now. */
let current: string;

/** The certificate each client connection got at its handshake. */
const servedBy = new WeakMap<TLSSocket, string>();

/** GET on the admin listener (HTTPS); which certificate the connection has, and its local port. */
function adminGet(path: string, via: https.Agent | false): Promise<{ status: number; body: string; served: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: proxy.adminPort, servername: 'localhost', path, ca: env.serverCa.certPem, agent: via, timeout: 5_000 }, (res) => {
      const socket = res.socket as TLSSocket;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, served: servedBy.get(socket) ?? '', localPort: socket.localPort! }));
    });
    req.on('socket', (s: TLSSocket) => {
      if (!servedBy.has(s)) s.once('secureConnect', () => servedBy.set(s, fp(s.getPeerX509Certificate()!.toString())));
    });
    req.on('timeout', () => req.destroy(new Error('admin request timed out')));
    req.on('error', reject);
    req.end();
  });
}

const healthz = async (via: https.Agent | false) => {
  const { body: _body, ...r } = await adminGet('/healthz', via);
  return r;
};
const counter = async (name: string, result: 'success' | 'rejected') => {
  const r = await adminGet('/metrics', false);
  expect(r.status).toBe(200);
  return sample(r.body, name, { result });
};
const install = (server: Issued, which: 'both' | 'key' = 'both') => {
  // Key first, then certificate, each in one rename: a watcher may see the pair half replaced
  // (refused, then applied once the second file lands) but never half a file.
  writeAtomic(join(env.dir, 'admin.key'), server.keyPem);
  if (which === 'both') writeAtomic(join(env.dir, 'admin.crt'), server.certPem + env.serverCa.certPem);
};

beforeAll(async () => {
  env = await createTestEnv();
  const first = await mintServer(env.serverCa.authority, ADMIN_HOSTS);
  install(first);
  current = first.fingerprint;
  env.writeConfig({ admin: { tls: { cert: 'admin.crt', key: 'admin.key' } } });
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

/** A good replacement: new handshakes get it, the open keep-alive connection keeps the old one. */
async function expectRotated(): Promise<void> {
  // One connection, kept alive across the replacement.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await rotateUnder(agent);
  } finally {
    agent.destroy();
  }
}

async function rotateUnder(agent: https.Agent): Promise<void> {
  const open = await healthz(agent);
  expect(open).toMatchObject({ status: 200, served: current });
  const next = await mintServer(env.serverCa.authority, ADMIN_HOSTS);
  expect(next.fingerprint).not.toBe(current);
  const ok = await counter('keygate_tls_reloads_total', 'success');
  install(next);
  await eventually(async () => (await healthz(false)).served === next.fingerprint);
  expect(await counter('keygate_tls_reloads_total', 'success')).toBeGreaterThan(ok);
  const again = await healthz(agent);
  expect(again).toMatchObject({ status: 200, served: current, localPort: open.localPort });
  current = next.fingerprint;
  // The twin of the open connection: a new one sees the new certificate.
  expect((await healthz(false)).served).toBe(current);
  expect(fp(readFileSync(join(env.dir, 'admin.crt'), 'utf8'))).toBe(current);
}

/** A key of another certificate: refused, counted twice over, logged, audited; the last good pair serves. */
async function expectMismatchRefused(): Promise<void> {
  const tlsRejected = await counter('keygate_tls_reloads_total', 'rejected');
  const configRejected = await counter('keygate_config_reloads_total', 'rejected');
  const logsBefore = logLines(proxy).length;
  const auditBefore = readJsonLines(env.auditFile).length;
  install(await mintServer(env.serverCa.authority, ADMIN_HOSTS), 'key');
  await eventually(async () => (await counter('keygate_tls_reloads_total', 'rejected')) === tlsRejected + 1);
  expect(await counter('keygate_config_reloads_total', 'rejected')).toBe(configRejected + 1);
  const logged = logLines(proxy)
    .slice(logsBefore)
    .find((l) => l.msg === 'tls change rejected; keeping the previous state');
  expect(logged, 'rejection logged').toBeDefined();
  expect(String((logged!.problems as string[])[0])).toMatch(/admin\.key does not belong to the certificate/);
  let audited: Record<string, unknown> | undefined;
  await eventually(() => (audited = readJsonLines(env.auditFile).slice(auditBefore).find((a) => a.event === 'config.rejected' && a.target === 'tls')) !== undefined, AUDIT_FLUSH_MS);
  expect(String((audited!.problems as string[])[0])).toMatch(/admin\.key does not belong to the certificate/);
  // Neither the mismatched pair nor nothing: the last good certificate, on a new handshake.
  expect(await healthz(false)).toMatchObject({ status: 200, served: current });
  expect(proxy.child.exitCode).toBeNull();
}

describe('the admin listener certificate', () => {
  it('is served as configured', async () => {
    expect(await healthz(false)).toMatchObject({ status: 200, served: current });
  });

  it('reloads when its files are replaced: a new handshake gets the new one, an open connection keeps working', expectRotated);

  it('refuses a key that does not belong to the certificate, and keeps the last good pair', async () => {
    await expectMismatchRefused();
    // Mending the pair (the key that belongs to the certificate served) is accepted again.
    const next = await mintServer(env.serverCa.authority, ADMIN_HOSTS);
    install(next);
    await eventually(async () => (await healthz(false)).served === next.fingerprint);
    current = next.fingerprint;
  });

  it('still reloads, and still refuses a bad pair, after keygate.yaml was reloaded', async () => {
    const reloads = await counter('keygate_config_reloads_total', 'success');
    env.writeConfig({ admin: { tls: { cert: 'admin.crt', key: 'admin.key' } }, log: { level: 'info' } });
    await eventually(() => logLines(proxy).some((l) => l.msg === 'config reloaded'));
    expect(await counter('keygate_config_reloads_total', 'success')).toBeGreaterThan(reloads);
    await expectRotated();
    await expectMismatchRefused();
  });
});

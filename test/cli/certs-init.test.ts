// keygate certs init: the dev PKI it writes (names, key modes, which CA signs what), that it
// never overwrites without --force, and that it is enough to run both ways in — the path
// `keygate dev` takes: init, issue a client certificate, call the clientauth host by
// connecting to 127.0.0.1 with the clientauth. name as SNI (what curl --resolve does).
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, request, runCli, type TestEnv } from '../helpers/harness.js';

let env: TestEnv;
let out: string;
const FILES = ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'client-ca.crt', 'client-ca.key'];
const read = (f: string) => readFileSync(join(out, f), 'utf8');

beforeAll(async () => {
  env = await createTestEnv();
  out = join(env.dir, 'pki');
});
afterAll(() => env.cleanup());

describe('keygate certs init', () => {
  it('writes a server CA, a server certificate for each host and its clientauth. twin, and a client CA', async () => {
    const r = await runCli(['certs', 'init', '--out', out, '--host', 'localhost', '--host', 'api.test,10.0.0.7']);
    expect(r.code, r.stderr).toBe(0);
    for (const f of FILES) expect(r.stdout).toContain(join(out, f).replace(`${process.cwd()}/`, ''));
    for (const f of FILES.filter((x) => x.endsWith('.key'))) expect(statSync(join(out, f)).mode & 0o777).toBe(0o600);
    const ca = new X509Certificate(read('ca.crt'));
    const server = new X509Certificate(read('server.crt'));
    const clientCa = new X509Certificate(read('client-ca.crt'));
    expect(ca.ca && clientCa.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.verify(clientCa.publicKey)).toBe(false);
    expect(server.subjectAltName!.split(', ').sort()).toEqual(['DNS:api.test', 'DNS:clientauth.api.test', 'DNS:clientauth.localhost', 'DNS:localhost', 'IP Address:10.0.0.7', 'IP Address:127.0.0.1'].sort());
    expect(server.checkPrivateKey(createPrivateKey(read('server.key')))).toBe(true);
    expect(clientCa.checkPrivateKey(createPrivateKey(read('client-ca.key')))).toBe(true);
    // The server file carries its chain, so clients that only know the CA still verify it.
    expect(read('server.crt')).toContain(read('ca.crt').trim());
  });

  it('refuses to overwrite without --force and leaves the files alone', async () => {
    const before = FILES.map(read);
    const r = await runCli(['certs', 'init', '--out', out, '--host', 'localhost']);
    expect(r.code).toBe(4); // KG_ERR_PKI_EXISTS: a conflict with the files that are there
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^keygate: .*ca\.crt.* already exist; pass --force to replace them/);
    expect(FILES.map(read)).toEqual(before);
  });

  it('replaces everything with --force', async () => {
    const before = read('client-ca.crt');
    const r = await runCli(['certs', 'init', '--out', out, '--host', 'localhost', '--host', 'api.test', '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(read('client-ca.crt')).not.toBe(before);
  });

  it('--format json lists the files it wrote, with what each is for', async () => {
    const r = await runCli(['certs', 'init', '--out', out, '--host', 'localhost', '--force', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<{ file: string; what: string }>;
    expect(rows.map((x) => x.file).sort()).toEqual(FILES.map((f) => join(out, f)).sort());
    expect(rows.find((x) => x.file.endsWith('/client-ca.key'))!.what).toContain('listen.clientAuth.caKey');
  });

  it.each([
    [['--host', 'bad host'], /^keygate: "bad host" is not a host name or IP address$/],
    [['--host', 'x.test', '--days', 'soon'], /^keygate: invalid --days "soon"/],
    [['--host', 'x.test', '--prefix', 'mtls'], /^keygate: invalid --prefix "mtls"/],
  ])('refuses %j with a usage error', async (args, message) => {
    const r = await runCli(['certs', 'init', '--out', join(env.dir, 'other'), ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(message);
    expect(existsSync(join(env.dir, 'other'))).toBe(false);
  });
});

describe('the dev PKI runs both ways in', () => {
  let port: number;
  let key: string;
  let cert: string;

  beforeAll(async () => {
    env.writeConfig({ listen: { tls: { cert: 'pki/server.crt', key: 'pki/server.key' }, clientAuth: { ca: 'pki/client-ca.crt', caKey: 'pki/client-ca.key' } } });
    expect((await env.cli(['account', 'create', '--name', 'demo', '--role', 'viewer'])).code).toBe(0);
    const issued = await env.cli(['cert', 'issue', '--account', 'demo', '--out', join(env.dir, 'demo')]);
    expect(issued.code, issued.stderr).toBe(0);
    cert = join(env.dir, 'demo', 'demo.crt');
    key = join(env.dir, 'demo', 'demo.key');
    port = (await env.startChild()).port;
  });

  it('a client certificate issued under it gets through clientauth.localhost', async () => {
    const before = env.upstream.received.length;
    const res = await request({ port, servername: 'clientauth.localhost', ca: read('ca.crt'), cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8'), path: '/api/items/1' });
    expect(res.status).toBe(200);
    expect(env.upstream.received[before]!.headers).toMatchObject({ 'x-keygate-account': 'demo', 'x-keygate-auth': 'mtls' });
  });

  it('the same request without the certificate is refused', async () => {
    const res = await request({ port, servername: 'clientauth.localhost', ca: read('ca.crt'), path: '/api/items/1' });
    expect([res.status, res.json().code]).toEqual([401, 'KG_ERR_CERT_MISSING']);
  });

  const curl = (args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile('curl', args, { timeout: 10_000 }, (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout }));
    });
  const hasCurl = existsSync('/usr/bin/curl') || existsSync('/usr/local/bin/curl');

  it.skipIf(!hasCurl)("curl with --resolve, as keygate dev prints it", async () => {
    const url = `https://clientauth.localhost:${port}/api/items/1`;
    const r = await curl(['-sS', '-w', '\n%{http_code}', '--cacert', join(out, 'ca.crt'), '--cert', cert, '--key', key, '--resolve', `clientauth.localhost:${port}:127.0.0.1`, url]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('200');
    const without = await curl(['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(out, 'ca.crt'), '--resolve', `clientauth.localhost:${port}:127.0.0.1`, url]);
    expect(without.stdout).toBe('401');
  });
});

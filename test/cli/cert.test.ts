// keygate cert issue | bind | list | unbind, run through the built CLI (harness runCli) against a temporary
// store: what each writes and prints, how each refuses bad input (one line naming the config
// file; exit 1 invalid, 2 usage, 3 not found, 4 conflict — docs/cli.md),
// what each audits, that a PKCS#12 password is printed once and nowhere else, and that a
// running proxy honours a new or removed binding within a second.
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, readJsonLines, eventually, MTLS_HOST, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintCa, mintClient, mintExpiredClient, mintIntermediate, type Issued } from '../helpers/pki.js';

let env: TestEnv;

interface BindingRow {
  id: string;
  account: string;
  match: string;
  value: string;
  nickname: string;
  status: string;
  endDate: string | null;
  notAfter: string | null;
}

const auditLines = () => readJsonLines(env.auditFile);

async function list(...args: string[]): Promise<BindingRow[]> {
  const r = await env.cli(['cert', 'list', '--format', 'json', ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as BindingRow[];
}

/**
 * Exit code and the one line of stderr of a refused command. Every failure that is not a usage
 * error names the config file (`keygate: config FILE: …`): checked here, then left out of
 * `line` so that the cases below read as the message.
 */
async function refused(args: string[]): Promise<{ code: number; line: string }> {
  const r = await env.cli(args);
  const lines = r.stderr.trim().split('\n');
  let line = lines.length === 1 ? lines[0]! : r.stderr;
  const where = `keygate: config ${env.configFile}: `;
  if (r.code !== 2 && r.code !== 0) {
    expect(line.startsWith(where), line).toBe(true);
    line = `keygate: ${line.slice(where.length)}`;
  }
  return { code: r.code, line };
}

beforeAll(async () => {
  env = await createTestEnv();
  for (const name of ['svc', 'other']) {
    const r = await env.cli(['account', 'create', '--name', name, '--role', 'viewer']);
    expect(r.code, r.stderr).toBe(0);
  }
});
afterAll(() => env.cleanup());

describe('keygate cert issue', () => {
  let out: string;
  let stdout: string;

  it('writes the certificate and a 0600 key, binds it by fingerprint and audits cert.issued', async () => {
    out = join(env.dir, 'issued');
    const r = await env.cli(['cert', 'issue', '--account', 'svc', '--days', '7', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    stdout = r.stdout;
    const cert = new X509Certificate(readFileSync(join(out, 'svc.crt')));
    expect(cert.subject).toContain('CN=svc');
    expect(cert.verify(new X509Certificate(env.clientCa.certPem).publicKey)).toBe(true);
    expect(Date.parse(cert.validTo) - Date.now()).toBeGreaterThan(6 * 86_400_000);
    expect(Date.parse(cert.validTo) - Date.now()).toBeLessThan(8 * 86_400_000);
    expect(statSync(join(out, 'svc.key')).mode & 0o777).toBe(0o600);
    const fingerprint = cert.fingerprint256.replace(/:/g, '').toLowerCase();
    expect(stdout).toContain(`binding      sha256:${fingerprint}`);
    const rows = await list('--account', 'svc');
    expect(rows).toEqual([expect.objectContaining({ id: `sha256:${fingerprint}`, account: 'svc', match: 'fingerprint', value: fingerprint, status: 'active' })]);
    expect(auditLines().filter((e) => e.event === 'cert.issued')).toEqual([expect.objectContaining({ target: `sha256:${fingerprint}`, account: 'svc', actor: expect.stringMatching(/^cli:/) })]);
    expect(readFileSync(env.auditFile, 'utf8')).not.toContain('PRIVATE KEY');
  });

  it('refuses to overwrite an earlier issue without --force, and replaces it with --force', async () => {
    const before = readFileSync(join(out, 'svc.crt'), 'utf8');
    const r = await refused(['cert', 'issue', '--account', 'svc', '--out', out]);
    expect(r).toEqual({ code: 4, line: expect.stringMatching(/^keygate: .*svc\.crt.* already exist.*--force/) });
    expect(readFileSync(join(out, 'svc.crt'), 'utf8')).toBe(before);
    expect(await list('--account', 'svc')).toHaveLength(1);
    const forced = await env.cli(['cert', 'issue', '--account', 'svc', '--out', out, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(join(out, 'svc.crt'), 'utf8')).not.toBe(before);
    expect(await list('--account', 'svc')).toHaveLength(2);
  });

  it.each([
    [['--account', 'nobody'], 3, /^keygate: no account named "nobody"$/],
    [['--account', 'svc', '--days', 'ten'], 2, /^keygate: invalid --days "ten"/],
    [['--account', 'svc', '--days', '0'], 1, /^keygate: --days must be a whole number from 1 to 3650/],
    [['--account', 'svc', '--scope', 'items:write'], 1, /^keygate: .*subset of its account's/],
  ])('refuses %j with one line', async (args, exit, message) => {
    const r = await refused(['cert', 'issue', '--out', join(env.dir, 'refused'), ...args]);
    expect(r.code).toBe(exit);
    expect(r.line).toMatch(message);
  });

  it('refuses without listen.clientAuth.caKey', async () => {
    env.writeConfig({ listen: { clientAuth: { caKey: null } } });
    try {
      const r = await refused(['cert', 'issue', '--account', 'svc', '--out', join(env.dir, 'nokey')]);
      expect(r).toEqual({ code: 1, line: 'keygate: listen.clientAuth.ca and listen.clientAuth.caKey must be set to issue client certificates' });
    } finally {
      env.writeConfig();
    }
  });
});

describe('keygate cert issue --p12', () => {
  let password: string;
  let p12: Buffer;
  let proxy: ChildProxy;

  beforeAll(async () => {
    const r = await env.cli(['cert', 'issue', '--account', 'other', '--out', join(env.dir, 'p12'), '--p12']);
    expect(r.code, r.stderr).toBe(0);
    const m = /^password {5}(\S+)$/m.exec(r.stdout);
    expect(m).not.toBeNull();
    password = m![1]!;
    // Printed once, on stdout only; never in stderr or the audit log.
    expect(r.stdout.split(password)).toHaveLength(2);
    expect(r.stderr).not.toContain(password);
    expect(readFileSync(env.auditFile, 'utf8')).not.toContain(password);
    expect(readFileSync(env.credentialsFile, 'utf8')).not.toContain(password);
    p12 = readFileSync(join(env.dir, 'p12', 'other.p12'));
    proxy = await env.startChild();
  });

  it('writes a 0600 bundle with an RSA key that Node loads with its password, and not without', () => {
    expect(statSync(join(env.dir, 'p12', 'other.p12')).mode & 0o777).toBe(0o600);
    expect(() => tls.createSecureContext({ pfx: p12, passphrase: password })).not.toThrow();
    expect(() => tls.createSecureContext({ pfx: p12, passphrase: `${password}x` })).toThrow(/mac verify failure/);
    const cert = new X509Certificate(readFileSync(join(env.dir, 'p12', 'other.crt')));
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
  });

  it('authenticates through keygate as its account', async () => {
    const before = env.upstream.received.length;
    const res = await request({ port: proxy.port, servername: MTLS_HOST, ca: env.serverCa.certPem, pfx: p12, passphrase: password, path: '/api/items/1' });
    expect(res.status, res.body).toBe(200);
    expect(env.upstream.received[before]!.headers['x-keygate-account']).toBe('other');
  });
});

describe('keygate cert bind | list | unbind', () => {
  let pem: Issued;

  beforeAll(async () => {
    pem = await mintClient(env.clientCa.authority, { commonName: 'from-file' });
    writeFileSync(join(env.dir, 'from-file.pem'), pem.certPem);
  });

  it.each([
    ['--cn', 'reporting-job', 'cn', 'reporting-job'],
    ['--dns', 'Worker.Example.Test', 'dns', 'worker.example.test'],
    ['--uri', 'spiffe://td.test/ns/prod/sa/*', 'uri', 'spiffe://td.test/ns/prod/sa/*'],
  ])('binds %s and prints the binding id', async (flag, value, match, stored) => {
    const r = await env.cli(['cert', 'bind', '--account', 'svc', flag, value, '--nickname', 'n1']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^crt_/);
    expect((await list()).find((b) => b.id === id)).toMatchObject({ account: 'svc', match, value: stored, nickname: 'n1' });
    expect(auditLines().filter((e) => e.event === 'cert.bound').at(-1)).toMatchObject({ target: id, account: 'svc', match });
  });

  it('binds a fingerprint written as openssl prints it, with an end date', async () => {
    const cert = await mintClient(env.clientCa.authority);
    const colons = cert.fingerprint.toUpperCase().replace(/(..)(?!$)/g, '$1:');
    const r = await env.cli(['cert', 'bind', '--account', 'svc', '--fingerprint', colons, '--end-date', '2099-12-31']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`sha256:${cert.fingerprint}`);
    expect((await list()).find((b) => b.id === `sha256:${cert.fingerprint}`)).toMatchObject({ endDate: '2099-12-31T23:59:59.999Z' });
  });

  it('binds a certificate file by its fingerprint, recording its notAfter', async () => {
    const r = await env.cli(['cert', 'bind', '--account', 'svc', '--file', join(env.dir, 'from-file.pem')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`sha256:${pem.fingerprint}`);
    expect(r.stderr).not.toMatch(/warning/);
    expect((await list()).find((b) => b.id === `sha256:${pem.fingerprint}`)).toMatchObject({ match: 'fingerprint', notAfter: pem.notAfter.toISOString(), nickname: 'CN=from-file' });
  });

  it('warns when the file was issued by no configured client CA', async () => {
    const foreign = await mintClient((await mintCa('foreign')).authority, { commonName: 'foreign' });
    writeFileSync(join(env.dir, 'foreign.pem'), foreign.certPem);
    const r = await env.cli(['cert', 'bind', '--account', 'other', '--file', join(env.dir, 'foreign.pem')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^keygate: warning: no configured client CA issued "CN=foreign" directly/m);
  });

  it.each([
    [['--cn', 'a', '--dns', 'b.test'], 2, /^keygate: name exactly one of --fingerprint, --cn, --uri, --dns or --file$/],
    [[], 2, /^keygate: name exactly one of/],
    [['--fingerprint', 'abc'], 1, /^keygate: "abc" is not a SHA-256 fingerprint/],
    [['--cn', 'reporting-job'], 4, /^keygate: this cn is already bound \(crt_\w+, account "svc"\)$/],
    [['--uri', 'not a uri'], 1, /^keygate: "not a uri" is not a URI/],
    [['--dns', 'bad_name!'], 1, /^keygate: "bad_name!" is not a DNS name$/],
    [['--cn', 'x', '--end-date', '2001-01-01'], 2, /^keygate: expiry "2001-01-01" is in the past$/],
    [['--file', 'missing.pem'], 3, /^keygate: cannot read missing\.pem: file not found$/],
    [['--cn', 'y', '--policy', 'nope'], 1, /^keygate: unknown policy "nope"$/],
  ])('refuses %j with one line', async (args, exit, message) => {
    const r = await refused(['cert', 'bind', '--account', 'svc', ...args]);
    expect(r.code).toBe(exit);
    expect(r.line).toMatch(message);
  });

  it('refuses an expired certificate file and a CA certificate file', async () => {
    const expired = await mintExpiredClient(env.clientCa.authority);
    writeFileSync(join(env.dir, 'expired.pem'), expired.certPem);
    expect((await refused(['cert', 'bind', '--account', 'svc', '--file', join(env.dir, 'expired.pem')])).line).toMatch(/^keygate: .*expired\.pem expired at /);
    expect((await refused(['cert', 'bind', '--account', 'svc', '--file', join(env.dir, 'client-ca.crt')])).line).toMatch(/^keygate: .*client-ca\.crt is a CA certificate/);
  });

  it('lists as table, JSON and CSV, filtered by account and status', async () => {
    const table = await env.cli(['cert', 'list', '--account', 'other']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+ACCOUNT\s+MATCH\s+VALUE\s+NICKNAME\s+STATUS/);
    expect((await list('--account', 'other')).every((b) => b.account === 'other')).toBe(true);
    expect((await list('--status', 'expired'))).toEqual([]);
    const csv = await env.cli(['cert', 'list', '--format', 'csv']);
    const lines = csv.stdout.trim().split('\r\n');
    expect(lines[0]).toBe('id,account,match,value,nickname,status,scopes,policy,createdAt,endDate,notAfter,lastUsedAt');
    expect(lines.length - 1).toBe((await list()).length);
    expect((await refused(['cert', 'list', '--format', 'xml'])).code).toBe(2);
  });

  it('unbinds by id (fingerprint ids in any notation) and audits cert.unbound', async () => {
    const id = `sha256:${pem.fingerprint}`;
    const r = await env.cli(['cert', 'unbind', `sha256:${pem.fingerprint.toUpperCase()}`]);
    expect(r.code, r.stderr).toBe(0);
    expect((await list()).some((b) => b.id === id)).toBe(false);
    expect(auditLines().filter((e) => e.event === 'cert.unbound').at(-1)).toMatchObject({ target: id, account: 'svc' });
    expect(await refused(['cert', 'unbind', id])).toEqual({ code: 3, line: `keygate: no certificate binding with id "${id}" (keygate cert list shows them)` });
  });

  it('unbinds a fingerprint binding in every spelling cert bind takes', async () => {
    const colons = (hex: string) => hex.replace(/(..)(?!$)/g, '$1:');
    const spellings: Array<[string, (hex: string) => string]> = [
      ['AB:CD:… (openssl)', (h) => colons(h.toUpperCase())],
      ['ab:cd:…', (h) => colons(h)],
      ['bare hex, lower case', (h) => h],
      ['bare hex, upper case', (h) => h.toUpperCase()],
      ['sha256:AB:CD:…', (h) => `sha256:${colons(h.toUpperCase())}`],
      ['SHA256:abcd…', (h) => `SHA256:${h}`],
    ];
    const ids: string[] = [];
    for (const [what, spell] of spellings) {
      const c = await mintClient(env.clientCa.authority);
      const id = `sha256:${c.fingerprint}`;
      ids.push(id);
      const bound = await env.cli(['cert', 'bind', '--account', 'other', '--fingerprint', spell(c.fingerprint)]);
      expect(bound.code, `${what}: ${bound.stderr}`).toBe(0);
      expect(bound.stdout.trim(), what).toBe(id);
      // The refused twin first: one hex digit short names no binding (and removes nothing: the
      // unbind after it finds the binding still there).
      const short = await refused(['cert', 'unbind', spell(c.fingerprint).slice(0, -1)]);
      expect(short, what).toEqual({ code: 3, line: expect.stringContaining('no certificate binding with id') });
      const r = await env.cli(['cert', 'unbind', spell(c.fingerprint)]);
      expect(r.code, `${what}: ${r.stderr}`).toBe(0);
      expect(r.stderr, what).toBe(`binding ${id} removed from account "other"\n`);
    }
    const left = (await list()).map((b) => b.id);
    for (const id of ids) expect(left).not.toContain(id);
  }, 120_000); // 19 CLI children
});

describe('keygate cert issue with an intermediate issuing CA', () => {
  it('writes the chain into the .crt and the .p12, and both authenticate', async () => {
    const root = await mintCa('issuing root');
    const inter = await mintIntermediate(root.authority, 'issuing intermediate');
    writeFileSync(join(env.dir, 'root.crt'), root.certPem);
    writeFileSync(join(env.dir, 'inter.crt'), inter.certPem);
    writeFileSync(join(env.dir, 'inter.key'), inter.keyPem, { mode: 0o600 });
    env.writeConfig({ listen: { clientAuth: { ca: ['root.crt', 'inter.crt'], caKey: 'inter.key' } } });
    try {
      const r = await env.cli(['cert', 'issue', '--account', 'svc', '--out', join(env.dir, 'chain'), '--p12', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { p12Password: string; certFile: string; keyFile: string; p12File: string };
      const pem = readFileSync(out.certFile, 'utf8');
      expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      expect(pem).toContain(inter.certPem.trim());
      // A keygate that trusts the root alone: the intermediate must come from the client.
      env.writeConfig({ listen: { clientAuth: { ca: 'root.crt', caKey: null } } });
      const proxy = await env.startChild();
      const viaPem = await request({ port: proxy.port, servername: MTLS_HOST, ca: env.serverCa.certPem, cert: pem, key: readFileSync(out.keyFile, 'utf8'), path: '/api/items/1' });
      expect(viaPem.status).toBe(200);
      const viaP12 = await request({ port: proxy.port, servername: MTLS_HOST, ca: env.serverCa.certPem, pfx: readFileSync(out.p12File), passphrase: out.p12Password, path: '/api/items/1' });
      expect(viaP12.status).toBe(200);
      // Without the intermediate the same leaf is not trusted: the chain in both files is what works.
      const leafOnly = pem.slice(0, pem.indexOf('-----END CERTIFICATE-----') + 25);
      const bare = await request({ port: proxy.port, servername: MTLS_HOST, ca: env.serverCa.certPem, cert: leafOnly, key: readFileSync(out.keyFile, 'utf8'), path: '/api/items/1' });
      expect([bare.status, bare.json().code]).toEqual([401, 'KG_ERR_CERT_UNTRUSTED']);
      expect(await proxy.stop()).toBe(0);
    } finally {
      env.writeConfig();
    }
  });
});

describe('a running proxy honours bindings within a second', () => {
  let child: ChildProxy;
  let cert: Issued;

  beforeAll(async () => {
    cert = await mintClient(env.clientCa.authority, { commonName: 'late-binding' });
    child = await env.startChild();
  });

  const call = async () => {
    const res = await request({ port: child.port, servername: MTLS_HOST, ca: env.serverCa.certPem, cert: cert.certPem, key: cert.keyPem, path: '/api/items/1' });
    return res.status === 200 ? 200 : `${res.status} ${String(res.json().code)}`;
  };

  it('a new binding admits the certificate, a removed one refuses it', async () => {
    expect(await call()).toBe('401 KG_ERR_CERT_UNBOUND');
    const bound = await env.cli(['cert', 'bind', '--account', 'svc', '--fingerprint', cert.fingerprint]);
    expect(bound.code, bound.stderr).toBe(0);
    await eventually(async () => (await call()) === 200, 1_000);
    const unbound = await env.cli(['cert', 'unbind', `sha256:${cert.fingerprint}`]);
    expect(unbound.code, unbound.stderr).toBe(0);
    await eventually(async () => (await call()) === '401 KG_ERR_CERT_UNBOUND', 1_000);
  });
});

// A secret never appears anywhere but in the one place it is printed (token create / rotate
// stdout): real tokens — valid, revoked, rotated, and a well-formed one never issued — are
// pushed through the real binary with the audit log in a file and debug logging on, the CLI
// is run across its inventory commands, and then every artifact is searched for each secret.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, request, type ChildProxy, type CliResult, type TestEnv } from '../helpers/harness.js';
import { mintToken } from '../../src/store/token-format.js';
import { adminGet, rawRequest, SETUP_TIMEOUT_MS } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
const secrets: string[] = [];
const ids: string[] = [];
const outputs: Array<[string, CliResult]> = [];

async function cli(args: string[]): Promise<CliResult> {
  const r = await env.cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  outputs.push([args.join(' '), r]);
  return r;
}

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ log: { level: 'debug' }, policies: { default: { rate: '1000/s', burst: 1000 }, tight: { rate: '1/m', burst: 1 } } });
  const valid = await env.token('svc-secret', { roles: ['viewer'] });
  const revoked = await env.token('svc-secret', { label: 'to revoke' });
  const limited = await env.token('svc-secret', { policy: 'tight' });
  const unknown = mintToken(null);
  secrets.push(valid.secret, revoked.secret, limited.secret, unknown);
  ids.push(valid.id, revoked.id, limited.id);
  // Debug level from keygate.yaml (log.level), as an operator would turn it on.
  proxy = await env.startChild();

  const call = (path: string, headers: Record<string, string>) => request({ port: proxy.port, ca: env.serverCa.certPem, path, headers });
  // Wait for the proxy to know the tokens (it has just read the file; this is a formality).
  await eventually(async () => (await call('/api/items/1', { 'x-api-key': valid.secret })).status === 200, 2_000);
  await cli(['token', 'revoke', revoked.id, '--reason', 'suspected leak']);
  await eventually(async () => (await call('/api/items/1', { 'x-api-key': revoked.secret })).status === 401, 2_000);
  const rotated = await cli(['token', 'rotate', valid.id, '--overlap', '1h']);
  const fresh = rotated.stdout.trim();
  expect(fresh).toMatch(/^kg_/);
  secrets.push(fresh);
  outputs.pop(); // rotate prints the new secret on stdout by design

  for (const secret of secrets) {
    const variants: Array<Record<string, string>> = [{ 'x-api-key': secret }, { authorization: `Bearer ${secret}` }, { 'x-api-key': secret, authorization: 'Basic dXNlcjpwdw==' }];
    for (const headers of variants) {
      await call('/api/items/1', headers);
      await call('/api/reports/1', headers); // 403 for the valid ones
      await call('/api/items/%2F', headers); // 400
    }
    await call('/api/items/1', { 'x-api-key': secret, authorization: `Bearer ${secrets[0]}` }); // ambiguous
    await call('/api/items/1', { 'x-api-key': secret.slice(0, -1) }); // malformed
    await call('/api/items/1', { 'x-api-key': secret }); // rate limited for the tight one
    await request({ port: proxy.port, ca: env.serverCa.certPem, servername: 'api.test', host: 'clientauth.api.test', path: '/api/items/1', headers: { 'x-api-key': secret } }); // 421
  }
  // Requests Node answers itself (431) and a broken head, carrying a token.
  await call('/api/items/1', { 'x-api-key': secrets[0]!, 'x-pad': 'p'.repeat(20_000) }).catch(() => undefined);
  await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: `GET /api/items/1 HTTP/1.1\r\nx-api-key: ${secrets[0]}\r\nbad header line\r\n\r\n`, timeoutMs: 3_000 });

  // A client that refuses the server certificate: a handshake failure, logged at debug.
  await request({ port: proxy.port, ca: env.clientCa.certPem, path: '/api/items/1', headers: { 'x-api-key': secrets[0]! } }).catch(() => undefined);

  for (const args of [
    ['token', 'list'],
    ['token', 'list', '--format', 'json'],
    ['token', 'list', '--format', 'csv'],
    ['token', 'list', '--status', 'revoked'],
    ['account', 'list'],
    ['account', 'list', '--format', 'json'],
    ['account', 'show', 'svc-secret'],
    ['account', 'show', 'svc-secret', '--json'],
    ['check'],
  ]) {
    await cli(args);
  }
  await cli(['token', 'restore', revoked.id]);
  await cli(['token', 'revoke', revoked.id]);
  await cli(['account', 'disable', 'svc-secret']);
  await cli(['account', 'enable', 'svc-secret']);
  // Last-use times are written in batches (200 ms in the test config).
  await eventually(() => existsSync(`${env.dir}/credentials.usage.json`) && readFileSync(`${env.dir}/credentials.usage.json`, 'utf8').includes(ids[0]!), 3_000);
}, 2 * SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

describe('no secret anywhere', () => {
  it('audit file', async () => {
    await eventually(() => readFileSync(env.auditFile, 'utf8').includes('KG_ERR_TOKEN_REVOKED'), 3_000);
    const text = readFileSync(env.auditFile, 'utf8');
    expect(text).toContain(ids[0]); // the twin: ids, which are safe, are there
    for (const s of secrets) expect(text).not.toContain(s);
  });

  it("the binary's stdout and stderr (debug level)", () => {
    const text = proxy.stdout() + proxy.stderr();
    expect(proxy.stderr()).toContain('"msg":"request handled"');
    expect(proxy.stderr()).toContain('"msg":"TLS handshake failed"');
    expect(proxy.stderr()).toContain('credentials reloaded');
    for (const s of secrets) expect(text).not.toContain(s);
  });

  it('/metrics', async () => {
    const text = (await adminGet(proxy.adminPort, '/metrics')).body;
    expect(text).toContain(ids[0]);
    for (const s of secrets) expect(text).not.toContain(s);
  });

  it('the credential file and the usage file', () => {
    const store = readFileSync(env.credentialsFile, 'utf8');
    const usage = readFileSync(`${env.dir}/credentials.usage.json`, 'utf8');
    expect(store).toContain(ids[0]);
    expect(usage).toContain(ids[0]);
    for (const s of secrets) {
      expect(store).not.toContain(s);
      expect(usage).not.toContain(s);
      // Nor the secret without its prefix, in case something stored only the body.
      expect(store).not.toContain(s.slice(3));
    }
  });

  it('every CLI output', () => {
    expect(outputs.length).toBeGreaterThanOrEqual(13);
    const listed = outputs.find(([cmd]) => cmd === 'token list --format json')![1].stdout;
    expect(listed).toContain(ids[0]);
    for (const [cmd, r] of outputs) {
      for (const s of secrets) {
        expect(r.stdout, cmd).not.toContain(s);
        expect(r.stderr, cmd).not.toContain(s);
      }
    }
  });
});

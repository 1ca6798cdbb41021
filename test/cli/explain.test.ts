// `keygate explain` through the built CLI (harness runCli): the normalized path, the route, the scope rule that
// allows the request or why none does, the rate policy, and account/credential problems.
// Exit 0 allowed, 1 denied, 2 usage (the one command where 1 has a meaning of its own,
// docs/cli.md). It needs keygate.yaml and the credential store only: the TLS files are removed
// before any test runs.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfigOrThrow } from '../../src/config/load.js';
import { FileStore } from '../../src/store/file/file-store.js';
import { createAccount, createToken, revokeToken, updateAccount } from '../../src/store/operations.js';
import { createTestEnv, type TestEnv } from '../helpers/harness.js';

// Bounds for a busy machine (some steps start the proxy or the binary).
vi.setConfig({ testTimeout: 60_000 });

let env: TestEnv;
let narrow: { secret: string; id: string };
let revoked: { secret: string; id: string };

// The store is seeded in-process through the same lifecycle operations the CLI uses: this
// file is about explain, and a dozen CLI start-ups would only make it slow.
beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ policies: { default: { rate: '1000/s', burst: 1000 }, ci: { rate: '600/m', burst: 30, per: 'account' } } });
  const config = loadConfigOrThrow(env.configFile).config;
  const op = { config, now: new Date() };
  const secret = (r: { record: { id: string }; secret: string }) => ({ id: r.record.id, secret: r.secret });
  await new FileStore(env.credentialsFile).update((d) => {
    createAccount(d, { name: 'reader', roles: ['viewer'] }, op);
    createToken(d, { account: 'reader' }, op);
    createAccount(d, { name: 'builder', roles: ['editor'], policy: 'ci' }, op);
    narrow = secret(createToken(d, { account: 'builder', scopes: ['items:read'], label: 'read-only build' }, op));
    revoked = secret(createToken(d, { account: 'builder', label: 'old' }, op));
    revokeToken(d, revoked.id, 'rotated by hand', op);
    createAccount(d, { name: 'sleeper', roles: ['viewer'] }, op);
    updateAccount(d, 'sleeper', { disabled: true }, op);
    createAccount(d, { name: 'operator', roles: ['admin'] }, op);
  });
  rmSync(join(env.dir, 'server.crt'));
  rmSync(join(env.dir, 'server.key'));
});
afterAll(() => env.cleanup());

const explain = (...args: string[]) => env.cli(['explain', ...args]);

describe('keygate explain', () => {
  it('allows: names the normalized path, the route, the rule and the policy (exit 0)', async () => {
    const r = await explain('--account', 'reader', 'GET', '/api/./items//42');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^request\s+GET \/api\/\.\/items\/\/42$/m);
    expect(r.stdout).toMatch(/^path\s+\/api\/items\/42$/m);
    expect(r.stdout).toMatch(/^route\s+#1 \/ -> http:\/\/127\.0\.0\.1:\d+$/m);
    expect(r.stdout).toMatch(/^rule\s+allowed by scope items:read: GET \/api\/items\/\*\*$/m);
    expect(r.stdout).toMatch(/^policy\s+default: 1000\/s, burst 1000, per credential$/m);
    expect(r.stdout).toMatch(/^decision\s+ALLOW$/m);
  });

  it('denies: says that no scope of the account allows it and which scopes would (exit 1)', async () => {
    const r = await explain('--account', 'reader', 'POST', '/api/items');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("none of the credential's scopes (items:read) allows POST /api/items; it needs one of: items:write");
    expect(r.stdout).toMatch(/^decision\s+DENY: 403 KG_ERR_SCOPE_DENIED/m);
    expect(r.stderr).toBe(`keygate: config ${env.configFile}: denied: 403 KG_ERR_SCOPE_DENIED\n`);
  });

  it("with --token: the token's own scopes leave out what the account has; its policy is the account's", async () => {
    const r = await explain('--account', 'builder', '--token', narrow.id, 'PUT', '/api/items/7');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^token\\s+${narrow.id} "read-only build" \\(active\\)$`, 'm'));
    expect(r.stdout).toContain("the account has items:write, but this token's own scopes (items:read) leave it out");
    expect(r.stdout).toMatch(/^policy\s+ci: 600\/m, burst 30, per account$/m);
    const ok = await explain('--account', 'builder', '--token', narrow.id, 'GET', '/api/items');
    expect(ok.code).toBe(0);
  });

  it('--token alone: the token names its account', async () => {
    const denied = await explain('--token', narrow.id, 'PUT', '/api/items/7');
    expect(denied.code, denied.stderr).toBe(1);
    expect(denied.stdout).toMatch(/^account\s+builder \(active\)$/m);
    expect(denied.stdout).toMatch(new RegExp(`^token\\s+${narrow.id} "read-only build" \\(active\\)$`, 'm'));
    expect(denied.stdout).toContain("the account has items:write, but this token's own scopes (items:read) leave it out");
    const allowed = await explain('--token', narrow.id, 'GET', '/api/items');
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toMatch(/^decision\s+ALLOW$/m);
    // The same explanation as with the account named.
    const both = await explain('--account', 'builder', '--token', narrow.id, '--format', 'json', 'GET', '/api/items');
    const alone = await explain('--token', narrow.id, '--format', 'json', 'GET', '/api/items');
    expect(JSON.parse(alone.stdout)).toEqual(JSON.parse(both.stdout));
    // Refused twin: a token that does not exist names no account.
    const unknown = await explain('--token', 'tok_00000000000000', 'GET', '/api/items');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no token with id "tok_00000000000000"');
  });

  it('names a refused path and exits 1', async () => {
    const r = await explain('--account', 'reader', 'GET', '/api/items%2F42');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^path\s+refused: the path contains an encoded "\/" or "\\"$/m);
    expect(r.stdout).toContain('DENY: 400 KG_ERR_PATH_INVALID');
  });

  it('lists state problems: a revoked token, a disabled account', async () => {
    const t = await explain('--account', 'builder', '--token', revoked.id, 'GET', '/api/items');
    expect(t.code).toBe(1);
    expect(t.stdout).toMatch(new RegExp(`^problem\\s+token ${revoked.id} is revoked \\(since .*: rotated by hand\\)$`, 'm'));
    expect(t.stdout).toContain('DENY: 401 KG_ERR_TOKEN_REVOKED');
    // The rule would allow it: the explanation still says so, next to the problem.
    expect(t.stdout).toMatch(/^rule\s+allowed by scope items:read/m);

    const a = await explain('--account', 'sleeper', 'GET', '/api/items');
    expect(a.code).toBe(1);
    expect(a.stdout).toMatch(/^problem\s+account "sleeper" is disabled$/m);
    expect(a.stdout).toContain('DENY: 401 KG_ERR_ACCOUNT_DISABLED');
  });

  it('says keygate:admin opens no route on the public listener', async () => {
    const r = await explain('--account', 'operator', 'GET', '/admin/v1/accounts');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('keygate:admin opens the admin API on the admin listener only');
    expect(r.stdout).toContain('no scope in keygate.yaml allows GET /admin/v1/accounts');
  });

  it('a public route needs no credential', async () => {
    const r = await explain('--account', 'sleeper', 'GET', '/healthz');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^route\s+#0 \/healthz -> .* \(public\)$/m);
  });

  it('--format json (and --json) carries the same decision; csv is not a form of an explanation', async () => {
    const viaFormat = await explain('--account', 'builder', '--token', narrow.id, '--format', 'json', 'DELETE', '/api/items/9');
    const viaJson = await explain('--account', 'builder', '--token', narrow.id, '--json', 'DELETE', '/api/items/9');
    expect(viaFormat.code).toBe(1);
    expect(JSON.parse(viaFormat.stdout)).toEqual(JSON.parse(viaJson.stdout));
    const csv = await explain('--account', 'reader', '--format', 'csv', 'GET', '/api/items');
    expect(csv.code).toBe(2);
    expect(csv.stderr).toContain('unknown format "csv": use table or json');
    expect(csv.stdout).toBe('');
  });

  it('--json carries the same decision', async () => {
    const r = await explain('--account', 'builder', '--token', narrow.id, '--json', 'DELETE', '/api/items/9');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({
      decision: 'deny',
      refusal: { status: 403, code: 'KG_ERR_SCOPE_DENIED' },
      request: { method: 'DELETE', normalizedPath: '/api/items/9' },
      scopes: ['items:read'],
      authorization: { allowedBy: null, wouldAllow: ['items:write'], accountHas: ['items:write'] },
      policy: { name: 'ci', rate: '600/m', burst: 30, per: 'account' },
    });
    const allowed = JSON.parse((await explain('--account', 'reader', '--json', 'GET', '/api/items')).stdout);
    expect(allowed).toMatchObject({ decision: 'allow', refusal: null, authorization: { allowedBy: { scope: 'items:read', rule: 'GET /api/items' } } });
  });

  it("a token of another account is a usage error (exit 2)", async () => {
    const r = await explain('--account', 'reader', '--token', narrow.id, 'GET', '/api/items');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`token ${narrow.id} belongs to account "builder", not "reader"`);
  });

  it.each([
    [['--account', 'ghost', 'GET', '/api/items'], 'no account named "ghost"'],
    [['--account', 'reader', 'GET', 'api/items'], 'the path must start with "/"'],
    [['--account', 'reader', 'GE T', '/api/items'], 'is not an HTTP method'],
    [['--account', 'reader', 'GET'], "missing required argument 'path'"],
    [['GET', '/api/items'], 'name the caller: --account NAME, --token ID, or both'],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const r = await explain(...args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe('');
  });
});

describe('keygate explain --batch', () => {
  const lines = (text: string) =>
    text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, any>);

  it('explains JSON lines from stdin, one JSON line each and in order, as --json would (exit 0 whatever the decisions)', async () => {
    const requests = [
      { account: 'reader', method: 'GET', path: '/api/./items//42' },
      { account: 'builder', token: narrow.id, method: 'PUT', path: '/api/items/7' },
      { account: 'builder', token: revoked.id, method: 'GET', path: '/api/items' },
      { account: 'sleeper', method: 'GET', path: '/healthz' },
    ];
    const r = await env.cli(['explain', '--batch', '-'], { input: requests.map((q) => JSON.stringify(q)).join('\n') + '\n\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = lines(r.stdout);
    expect(out).toHaveLength(4);
    expect(out[0]).toMatchObject({ decision: 'allow', request: { normalizedPath: '/api/items/42' }, authorization: { allowedBy: { scope: 'items:read' } } });
    expect(out[1]).toMatchObject({ decision: 'deny', refusal: { status: 403, code: 'KG_ERR_SCOPE_DENIED' }, credential: { id: narrow.id } });
    expect(out[2]).toMatchObject({ decision: 'deny', refusal: { status: 401, code: 'KG_ERR_TOKEN_REVOKED' } });
    expect(out[3]).toMatchObject({ decision: 'allow', route: { public: true } });
    // The same answer as the one-request form.
    const single = JSON.parse((await explain('--account', 'builder', '--token', narrow.id, '--json', 'PUT', '/api/items/7')).stdout);
    expect(out[1]).toEqual(single);
  });

  it('reads a file too; a line it cannot explain gets an error line in its place, and the exit is 2', async () => {
    const file = join(env.dir, 'requests.jsonl');
    writeFileSync(file, [JSON.stringify({ account: 'reader', method: 'GET', path: '/api/items' }), 'not json', JSON.stringify({ account: 'ghost', method: 'GET', path: '/' }), JSON.stringify({ account: 'reader', method: 'GET' }), JSON.stringify({ account: 'reader', method: 'GET', path: '/', extra: 1 }), JSON.stringify({ account: 'reader', method: 'POST', path: '/api/items' })].join('\n'));
    const r = await env.cli(['explain', '--batch', file]);
    expect(r.code).toBe(2);
    const out = lines(r.stdout);
    expect(out).toHaveLength(6);
    expect(out[0]).toMatchObject({ decision: 'allow' });
    expect(out[1]).toEqual({ line: 2, error: { code: 'KG_ERR_EXPLAIN_INPUT', detail: 'the line is not JSON' } });
    expect(out[2]).toEqual({ line: 3, error: { code: 'KG_ERR_EXPLAIN_INPUT', detail: 'no account named "ghost"' } });
    expect(out[3]).toMatchObject({ line: 4, error: { detail: '"path" must be a string' } });
    expect(out[4]).toMatchObject({ line: 5, error: { detail: expect.stringContaining('unknown field "extra"') } });
    expect(out[5]).toMatchObject({ decision: 'deny', refusal: { code: 'KG_ERR_SCOPE_DENIED' } });
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    [['--batch', '-', 'GET', '/api/items']],
    [['--batch', '-', '--account', 'reader']],
  ])('%j is a usage error (exit 2)', async (args) => {
    const r = await explain(...args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
  });

  it('a file that does not exist is an error (exit 1)', async () => {
    const r = await explain('--batch', join(env.dir, 'missing.jsonl'));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
  });
});

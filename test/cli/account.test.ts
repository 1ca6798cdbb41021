// `keygate account …` run through the built CLI (harness runCli) against a temporary store: the name and owner
// rules, end dates, show with tokens and bindings, delete refused while credentials are live,
// and the management audit lines. Each accepted input has a refused twin. Exit codes follow
// docs/cli.md: 1 invalid input, 2 usage, 3 not found, 4 conflict; a failure names the config.
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { bindCertificate } from '../../src/store/cert-operations.js';
import { loadConfigOrThrow } from '../../src/config/load.js';
import { createTestEnv, readJsonLines, type TestEnv } from '../helpers/harness.js';

// Bounds for a busy machine (some steps start the proxy or the binary).
vi.setConfig({ testTimeout: 60_000 });

let env: TestEnv;
/** When this file began: every audit line it causes is timed between this and now. */
let started: number;

beforeAll(async () => {
  started = Date.now();
  env = await createTestEnv();
});
afterAll(() => env.cleanup());

const auditLines = () => readJsonLines(env.auditFile);
/** The one stderr line of a failure: it names the config file the command used. */
const failure = (message: string) => `keygate: config ${env.configFile}: ${message}`;

describe('account create', () => {
  it('accepts letters, digits, spaces, - and _ and prints the record', async () => {
    const r = await env.cli(['account', 'create', '--name', 'CI Deployer_2-x', '--owner', 'team@example.com', '--description', 'deploys', '--role', 'viewer', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const a = JSON.parse(r.stdout);
    expect(a).toMatchObject({ name: 'CI Deployer_2-x', owner: 'team@example.com', roles: ['viewer'], disabled: false, endDate: null });
    // A confirmation on stderr; the audit line went to the audit file only.
    expect(r.stderr).toBe('account "CI Deployer_2-x" created\n');
  });

  it('prints the record as aligned fields by default, and as one CSV row with --format csv', async () => {
    const text = await env.cli(['account', 'create', '--name', 'fields', '--owner', 'f@example.com', '--role', 'viewer,editor']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^name +fields$/m);
    expect(text.stdout).toMatch(/^roles +viewer, editor$/m);
    expect(text.stdout).toMatch(/^endDate +-$/m);
    const csv = await env.cli(['account', 'update', 'fields', '--description', 'has, a comma', '--format', 'csv']);
    expect(csv.code, csv.stderr).toBe(0);
    const [header, row, end] = csv.stdout.split('\r\n');
    expect(header!.split(',')).toEqual(expect.arrayContaining(['name', 'owner', 'roles', 'description']));
    expect(row).toContain('"has, a comma"');
    expect(row).toContain('viewer editor');
    expect(end).toBe('');
    const refused = await env.cli(['account', 'update', 'fields', '--owner', 'g@example.com', '--format', 'yaml']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('unknown format "yaml": use table, json or csv');
  });

  it.each([
    ['a slash', 'bad/name'],
    ['a leading space', ' lead'],
    ['a dot', 'a.b'],
    ['65 characters', 'x'.repeat(65)],
  ])('refuses a name with %s', async (_what, name) => {
    const r = await env.cli(['account', 'create', '--name', name]);
    expect(r.code).toBe(1);
    expect(r.stderr.startsWith(failure('invalid account name'))).toBe(true);
    expect(r.stdout).toBe('');
  });

  it('refuses a duplicate name, whatever its case', async () => {
    const r = await env.cli(['account', 'create', '--name', 'ci deployer_2-X']);
    expect(r.code).toBe(4); // a conflict with what is in the store
    expect(r.stderr).toBe(`${failure('an account named "ci deployer_2-X" already exists')}\n`);
  });

  it('refuses an owner that is not an e-mail address', async () => {
    const r = await env.cli(['account', 'create', '--name', 'no-mail', '--owner', 'bob']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('owner "bob" is not an e-mail address');
  });

  it('takes an end date as a day that ends at 23:59:59.999 UTC, and refuses an impossible day', async () => {
    const good = await env.cli(['account', 'create', '--name', 'ending', '--end-date', '2030-01-31', '--role', 'viewer']);
    expect(good.code, good.stderr).toBe(0);
    const t = await env.token('ending');
    const list = await env.cli(['token', 'list', '--account', 'ending', '--format', 'json']);
    const [row] = JSON.parse(list.stdout);
    expect(row.id).toBe(t.id);
    expect(row.endsAt).toBe('2030-01-31T23:59:59.999Z');

    const bad = await env.cli(['account', 'create', '--name', 'never', '--end-date', '2030-02-30']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid end date "2030-02-30"');
  });

  it('refuses an unknown role, scope or policy, naming what exists', async () => {
    const role = await env.cli(['account', 'create', '--name', 'r1', '--role', 'superuser']);
    expect(role.code).toBe(1);
    expect(role.stderr).toContain('unknown role "superuser" (defined roles: viewer, editor, admin)');
    const scope = await env.cli(['account', 'create', '--name', 'r2', '--scope', 'items:delete']);
    expect(scope.code).toBe(1);
    expect(scope.stderr).toContain('unknown scope "items:delete"');
    const policy = await env.cli(['account', 'create', '--name', 'r3', '--policy', 'gold']);
    expect(policy.code).toBe(1);
    expect(policy.stderr).toContain('unknown policy "gold"');
  });
});

describe('account show, update, disable, enable', () => {
  it('shows the tokens and the certificate bindings of the account', async () => {
    const t = await env.token('shown', { roles: ['editor'], label: 'build server' });
    const store = new FileStore(env.credentialsFile);
    const config = loadConfigOrThrow(env.configFile).config;
    const binding = await store.update((d) => bindCertificate(d, { account: 'shown', match: 'uri', value: 'spiffe://example.org/ns/ci/sa/shown', nickname: 'ci workload' }, { config, now: new Date() }));

    const json = await env.cli(['account', 'show', 'shown', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const detail = JSON.parse(json.stdout);
    expect(detail.status).toBe('active');
    expect(detail.effectiveScopes).toEqual(['items:read', 'items:write']);
    expect(detail.tokens.map((x: { id: string }) => x.id)).toEqual([t.id]);
    expect(detail.tokens[0]).toMatchObject({ label: 'build server', status: 'active' });
    expect(detail.bindings).toEqual([expect.objectContaining({ id: binding.id, match: 'uri', nickname: 'ci workload', status: 'active' })]);
    expect(json.stdout).not.toContain(t.secret);

    const text = await env.cli(['account', 'show', 'shown']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/tokens:\n.*\n.*build server/);
    expect(text.stdout).toContain('spiffe://example.org/ns/ci/sa/shown');
  });

  it('says so when there is no such account', async () => {
    const r = await env.cli(['account', 'show', 'ghost']);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`${failure('no account named "ghost"')}\n`);
    expect((await env.cli(['account', 'disable', 'ghost'])).code).toBe(3);
  });

  it('updates fields, and refuses to take away a scope a token still holds', async () => {
    await env.token('narrow', { roles: ['editor'], tokenScopes: ['items:write'] });
    const ok = await env.cli(['account', 'update', 'narrow', '--owner', 'new@example.com', '--end-date', '2031-12-31', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ owner: 'new@example.com', endDate: '2031-12-31' });
    const refused = await env.cli(['account', 'update', 'narrow', '--role', 'viewer']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/tok_\w+ has scope\(s\) items:write the account would no longer have; delete that credential first/);
    const past = await env.cli(['account', 'update', 'narrow', '--end-date', '2020-01-01']);
    expect(past.code).toBe(0);
    expect(past.stderr).toContain('end date 2020-01-01 has passed; every credential of "narrow" is refused');
    expect(ok.stderr).not.toContain('has passed');
    const cleared = await env.cli(['account', 'update', 'narrow', '--end-date', 'none', '--format', 'json']);
    expect(JSON.parse(cleared.stdout).endDate).toBeNull();
    const nothing = await env.cli(['account', 'update', 'narrow']);
    expect(nothing.code).toBe(2);
  });

  it('disables and enables, as the list shows', async () => {
    await env.cli(['account', 'create', '--name', 'toggled', '--role', 'viewer']);
    const status = async () => {
      const r = await env.cli(['account', 'list', '--format', 'json']);
      return (JSON.parse(r.stdout) as Array<{ name: string; status: string }>).find((a) => a.name === 'toggled')!.status;
    };
    expect((await env.cli(['account', 'disable', 'toggled'])).code).toBe(0);
    expect(await status()).toBe('disabled');
    expect((await env.cli(['account', 'enable', 'toggled'])).code).toBe(0);
    expect(await status()).toBe('active');
  });
});

describe('account delete', () => {
  it('refuses while the account holds an active credential, and deletes with --force', async () => {
    const t = await env.token('doomed', { roles: ['viewer'] });
    const refused = await env.cli(['account', 'delete', 'doomed']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`still holds 1 active credential(s) (${t.id}); revoke them first or use --force`);
    const forced = await env.cli(['account', 'delete', 'doomed', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    const list = await env.cli(['token', 'list', '--format', 'json']);
    expect(list.stdout).not.toContain(t.id);
  });

  it('deletes without --force once every credential is revoked', async () => {
    const t = await env.token('retired', { roles: ['viewer'] });
    expect((await env.cli(['token', 'revoke', t.id])).code).toBe(0);
    const r = await env.cli(['account', 'delete', 'retired']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('deleted with 1 token(s)');
  });
});

describe('account audit', () => {
  it('records account.* events with the CLI user as actor, the target and the time', async () => {
    const events = auditLines();
    const actor = `cli:${userInfo().username}`;
    for (const name of ['account.created', 'account.updated', 'account.disabled', 'account.enabled', 'account.deleted']) {
      const e = events.find((x) => x.event === name);
      expect(e, name).toBeDefined();
      expect(e!.actor).toBe(actor);
      expect(typeof e!.target).toBe('string');
      // Between this file's start and now, however long a busy machine took in between.
      expect(Date.parse(e!.time as string)).toBeGreaterThanOrEqual(started);
      expect(Date.parse(e!.time as string)).toBeLessThanOrEqual(Date.now());
    }
    expect(events.find((e) => e.event === 'account.deleted' && e.target === 'doomed')).toMatchObject({ force: true });
  });
});

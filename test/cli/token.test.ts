// `keygate token …` run through the built CLI (harness runCli) against a temporary store: the secret alone on
// stdout, scopes a subset of the account's, expiry forms, the inventory with its filters and
// exports (which never hold a secret or a hash), revoke / restore / rotate / delete, and the
// exit codes of docs/cli.md (1 invalid, 2 usage, 3 not found, 4 conflict), each failure one
// stderr line naming the config file.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnv, readJsonLines, type TestEnv } from '../helpers/harness.js';
import { loadConfigOrThrow } from '../../src/config/load.js';
import { FileStore } from '../../src/store/file/file-store.js';
import { createToken } from '../../src/store/operations.js';

// Bounds for a busy machine (some steps start the proxy or the binary).
vi.setConfig({ testTimeout: 60_000 });

let env: TestEnv;
const secrets: string[] = [];
const failure = (message: string) => `keygate: config ${env.configFile}: ${message}\n`;

beforeAll(async () => {
  env = await createTestEnv();
  for (const [name, role] of [['viewer-acct', 'viewer'], ['editor-acct', 'editor']]) {
    const r = await env.cli(['account', 'create', '--name', name!, '--role', role!]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
}, 120_000); // several CLI children: slow on a busy machine
afterAll(() => env.cleanup());

async function create(args: string[]): Promise<{ secret: string; id: string; record: Record<string, unknown> }> {
  const r = await env.cli(['token', 'create', '--json', ...args]);
  expect(r.code, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout);
  secrets.push(j.token);
  return { secret: j.token, id: j.id, record: j };
}

/**
 * A token that expired a minute ago, written straight into the store as if made a day ago (the
 * lifecycle operations the CLI runs): no test sleeps through an expiry.
 */
async function createLapsed(account: string, label: string): Promise<{ secret: string; id: string }> {
  const { config } = loadConfigOrThrow(env.configFile);
  const past = { config, now: new Date(Date.now() - 86_400_000) };
  let made: { secret: string; id: string } | undefined;
  await new FileStore(env.credentialsFile).update((data) => {
    const r = createToken(data, { account, label, expiresAt: new Date(Date.now() - 60_000).toISOString() }, past);
    made = { secret: r.secret, id: r.record.id };
  });
  secrets.push(made!.secret);
  return made!;
}

async function list(...args: string[]): Promise<Array<Record<string, any>>> {
  const r = await env.cli(['token', 'list', '--format', 'json', ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** RFC 4180 CSV, enough for the inventory: quoted cells, doubled quotes, CRLF rows. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  if (cell !== '' || row.length) rows.push([...row, cell]);
  return rows;
}

describe('token create', () => {
  it('prints the secret alone on stdout and the id on stderr', async () => {
    const r = await env.cli(['token', 'create', '--account', 'viewer-acct', '--label', 'plain']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^kg_[0-9A-Za-z]{39}\n$/);
    const secret = r.stdout.trim();
    secrets.push(secret);
    expect(r.stderr).toMatch(/^token tok_[0-9A-Za-z]{14} created for account "viewer-acct"/);
    expect(r.stderr).not.toContain(secret);
  });

  it("accepts scopes within the account's and refuses a superset with a clear message", async () => {
    const ok = await create(['--account', 'editor-acct', '--scope', 'items:read', '--label', 'read only']);
    expect(ok.record).toMatchObject({ scopes: ['items:read'], ownScopes: true });
    const refused = await env.cli(['token', 'create', '--account', 'viewer-acct', '--scope', 'items:read,items:write']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe(failure('a token\'s scopes must be a subset of its account\'s: account "viewer-acct" does not have items:write (it has: items:read)'));
  });

  it('takes --expires as a duration or a day (ending 23:59:59.999 UTC), and refuses the past', async () => {
    const before = Date.now();
    const inDays = await create(['--account', 'viewer-acct', '--expires', '30d']);
    const at = Date.parse(inDays.record.expiresAt as string);
    expect(at).toBeGreaterThanOrEqual(before + 30 * 86_400_000);
    expect(at).toBeLessThan(Date.now() + 30 * 86_400_000 + 1_000);
    const onDay = await create(['--account', 'viewer-acct', '--expires', '2031-01-31']);
    expect(onDay.record.expiresAt).toBe('2031-01-31T23:59:59.999Z');
    const past = await env.cli(['token', 'create', '--account', 'viewer-acct', '--expires', '2001-01-01']);
    expect(past.code).toBe(2);
    expect(past.stderr).toContain('expiry "2001-01-01" is in the past');
    const nonsense = await env.cli(['token', 'create', '--account', 'viewer-acct', '--expires', 'soon']);
    expect(nonsense.code).toBe(2);
  });

  it('refuses an unknown account', async () => {
    const r = await env.cli(['token', 'create', '--account', 'ghost']);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(failure('no account named "ghost"'));
  });
});

describe('token lifecycle', () => {
  it('revokes with a reason, restores, and refuses to restore what is not revoked', async () => {
    const t = await create(['--account', 'viewer-acct', '--label', 'to revoke']);
    const before = Date.now();
    const revoked = await env.cli(['token', 'revoke', t.id, '--reason', 'leaked in a CI log']);
    expect(revoked.code, revoked.stderr).toBe(0);
    const [row] = (await list('--status', 'revoked')).filter((x) => x.id === t.id);
    expect(row).toMatchObject({ status: 'revoked', revokeReason: 'leaked in a CI log' });
    expect(Date.parse(row!.revokedAt)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(row!.revokedAt)).toBeLessThanOrEqual(Date.now());
    expect((await env.cli(['token', 'revoke', t.id])).code).toBe(4); // already revoked: a conflict

    expect((await env.cli(['token', 'restore', t.id])).code).toBe(0);
    const [again] = (await list('--status', 'active')).filter((x) => x.id === t.id);
    expect(again).toMatchObject({ status: 'active', revokedAt: null, revokeReason: null });
    const twice = await env.cli(['token', 'restore', t.id]);
    expect(twice.code).toBe(4);
    expect(twice.stderr).toContain('is not revoked');
  });

  it('refuses to restore an expired token', async () => {
    const t = await createLapsed('viewer-acct', 'lapsed');
    expect((await env.cli(['token', 'revoke', t.id])).code).toBe(0);
    const r = await env.cli(['token', 'restore', t.id]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/expired at .*; an expired token cannot be restored/);
  });

  it('rotates: a new secret with the same account, label, scopes and policy; the old one ends with the overlap; both listed and linked', async () => {
    const old = await create(['--account', 'editor-acct', '--label', 'deployer', '--scope', 'items:read', '--policy', 'default', '--expires', '30d']);
    const before = Date.now();
    const r = await env.cli(['token', 'rotate', old.id, '--overlap', '2h']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^kg_[0-9A-Za-z]{39}\n$/);
    const secret = r.stdout.trim();
    secrets.push(secret);
    expect(secret).not.toBe(old.secret);
    const successorId = /token (tok_\w+) replaces/.exec(r.stderr)![1]!;
    expect(r.stderr).not.toContain(secret);

    const rows = await list('--account', 'editor-acct');
    const o = rows.find((x) => x.id === old.id)!;
    const n = rows.find((x) => x.id === successorId)!;
    expect(n).toMatchObject({ account: 'editor-acct', label: 'deployer', scopes: ['items:read'], ownScopes: true, policy: 'default', status: 'active', rotatedFrom: old.id });
    expect(o).toMatchObject({ status: 'active', rotatedTo: successorId });
    const oldEnd = Date.parse(o.expiresAt);
    expect(oldEnd).toBeGreaterThanOrEqual(before + 2 * 3_600_000);
    expect(oldEnd).toBeLessThan(Date.now() + 2 * 3_600_000 + 1_000);
    // The successor gets the old token's lifetime (30 days), counted from now.
    expect(Date.parse(n.expiresAt)).toBeGreaterThan(Date.now() + 29 * 86_400_000);

    const again = await env.cli(['token', 'rotate', old.id]);
    expect(again.code).toBe(4);
    expect(again.stderr).toContain(`was already rotated (to ${successorId})`);
  });

  it('rotating a revoked token (incident response) keeps it revoked and makes an active successor', async () => {
    const old = await create(['--account', 'viewer-acct', '--label', 'leaked']);
    expect((await env.cli(['token', 'revoke', old.id, '--reason', 'leak'])).code).toBe(0);
    const r = await env.cli(['token', 'rotate', old.id, '--overlap', '0s', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const successor = JSON.parse(r.stdout);
    secrets.push(successor.token);
    const rows = await list('--account', 'viewer-acct');
    expect(rows.find((x) => x.id === old.id)).toMatchObject({ status: 'revoked', revokeReason: 'leak', rotatedTo: successor.id });
    expect(rows.find((x) => x.id === successor.id)).toMatchObject({ status: 'active', label: 'leaked' });
  });

  it('rotate --json holds the new secret and names the token it replaces', async () => {
    const old = await create(['--account', 'viewer-acct', '--label', 'json rotation']);
    const r = await env.cli(['token', 'rotate', old.id, '--overlap', '10m', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    secrets.push(j.token);
    expect(j).toMatchObject({ replaces: old.id, rotatedFrom: old.id, label: 'json rotation' });
    expect(j.token).toMatch(/^kg_/);
    expect(Date.parse(j.replacedExpiresAt)).toBeLessThanOrEqual(Date.now() + 600_000);
  });

  it('deletes a token and unlinks its rotation partner', async () => {
    const old = await create(['--account', 'viewer-acct', '--label', 'deleted later']);
    const r = await env.cli(['token', 'rotate', old.id, '--overlap', '0s', '--json']);
    const successor = JSON.parse(r.stdout);
    secrets.push(successor.token);
    expect((await env.cli(['token', 'delete', old.id])).code).toBe(0);
    const rows = await list('--account', 'viewer-acct');
    expect(rows.some((x) => x.id === old.id)).toBe(false);
    expect(rows.find((x) => x.id === successor.id)!.rotatedFrom).toBeNull();
    const gone = await env.cli(['token', 'delete', old.id]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toBe(failure(`no token with id "${old.id}"`));
  });
});

describe('token list', () => {
  it('filters by account, status and --expiring (own expiry or account end date)', async () => {
    await env.cli(['account', 'create', '--name', 'soon-ending', '--role', 'viewer', '--end-date', new Date(Date.now() + 5 * 86_400_000).toISOString().slice(0, 10)]);
    const ending = await create(['--account', 'soon-ending']);
    const expiring = await create(['--account', 'viewer-acct', '--expires', '3d', '--label', 'expiring']);
    const later = await create(['--account', 'viewer-acct', '--expires', '40d', '--label', 'later']);
    const brief = await createLapsed('viewer-acct', 'brief');

    const soon = (await list('--expiring', '14d')).map((x) => x.id);
    expect(soon).toContain(expiring.id);
    expect(soon).toContain(ending.id);
    expect(soon).not.toContain(later.id);
    expect((await list('--expiring', '14d', '--account', 'viewer-acct')).map((x) => x.id)).not.toContain(ending.id);

    const byAccount = await list('--account', 'editor-acct');
    expect(byAccount.length).toBeGreaterThan(0);
    expect(byAccount.every((x) => x.account === 'editor-acct')).toBe(true);
    const expired = await list('--status', 'expired');
    expect(expired.map((x) => x.id)).toContain(brief.id);
    expect(expired.every((x) => x.status === 'expired')).toBe(true);
    expect(soon).not.toContain(brief.id); // --expiring lists what still works
  });

  it('exports JSON and CSV with every inventory column and never a secret or a hash', async () => {
    const hostile = await create(['--account', 'viewer-acct', '--label', '=HYPERLINK("http://evil.example","x")']);
    const stored = readFileSync(env.credentialsFile, 'utf8');
    const hashes = [...stored.matchAll(/"hash":"([0-9a-f]{64})"/g)].map((m) => m[1]!);
    expect(hashes.length).toBeGreaterThan(5);

    const json = await env.cli(['token', 'list', '--format', 'json']);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(Object.keys(rows[0]!)).toEqual(expect.arrayContaining(['id', 'account', 'label', 'scopes', 'createdAt', 'expiresAt', 'lastUsedAt', 'revokedAt', 'revokeReason']));

    const csv = await env.cli(['token', 'list', '--format', 'csv']);
    expect(csv.code).toBe(0);
    const table = parseCsv(csv.stdout);
    expect(table[0]).toEqual(['id', 'account', 'label', 'status', 'scopes', 'policy', 'createdAt', 'expiresAt', 'endsAt', 'lastUsedAt', 'revokedAt', 'revokeReason', 'rotatedFrom', 'rotatedTo']);
    expect(table.length).toBe(rows.length + 1);
    expect(table.every((r) => r.length === table[0]!.length)).toBe(true);
    const hostileRow = table.find((r) => r[0] === hostile.id)!;
    // A spreadsheet must not run the label as a formula.
    expect(hostileRow[2]).toBe('\'=HYPERLINK("http://evil.example","x")');

    const table2 = await env.cli(['token', 'list']);
    for (const out of [json.stdout, csv.stdout, table2.stdout]) {
      for (const s of secrets) expect(out).not.toContain(s);
      for (const h of hashes) expect(out).not.toContain(h);
      expect(out).not.toMatch(/kg_[0-9A-Za-z]{39}/);
    }
  });

  it('shows one token without its secret', async () => {
    const t = await create(['--account', 'viewer-acct', '--label', 'shown']);
    const r = await env.cli(['token', 'show', t.id]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^id\s+tok_/);
    expect(r.stdout).toContain('shown');
    expect(r.stdout).not.toContain(t.secret);
    const missing = await env.cli(['token', 'show', 'tok_00000000000000']);
    expect(missing.code).toBe(3);

    // --format json (and its older spelling --json) and csv: the same view.
    const json = await env.cli(['token', 'show', t.id, '--format', 'json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: t.id, label: 'shown', status: 'active' });
    expect(JSON.parse((await env.cli(['token', 'show', t.id, '--json'])).stdout)).toEqual(JSON.parse(json.stdout));
    const csv = parseCsv((await env.cli(['token', 'show', t.id, '--format', 'csv'])).stdout);
    expect(csv).toHaveLength(2);
    expect(csv[1]![csv[0]!.indexOf('label')]).toBe('shown');
    for (const out of [json.stdout, JSON.stringify(csv)]) expect(out).not.toContain(t.secret);
    const both = await env.cli(['token', 'show', t.id, '--json', '--format', 'csv']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--json and --format csv contradict each other');
  });

  it('create --format csv puts the secret first in one row, and table (the default) prints it alone', async () => {
    const r = await env.cli(['token', 'create', '--account', 'viewer-acct', '--label', 'as csv', '--format', 'csv']);
    expect(r.code, r.stderr).toBe(0);
    const [header, row] = parseCsv(r.stdout);
    expect(header!.slice(0, 2)).toEqual(['token', 'id']);
    expect(row![0]).toMatch(/^kg_[0-9A-Za-z]{39}$/);
    secrets.push(row![0]!);
    expect(row![header!.indexOf('label')]).toBe('as csv');
    expect(r.stderr).not.toContain(row![0]!);
  });

  it.each([
    [['token', 'list', '--status', 'bogus'], 'unknown status "bogus"'],
    [['token', 'list', '--format', 'xml'], 'unknown format "xml"'],
    [['token', 'list', '--expiring', 'fortnight'], 'invalid expiring "fortnight"'],
    [['token', 'rotate', 'tok_00000000000000', '--overlap', 'a while'], 'invalid --overlap'],
    [['token', 'create'], "required option '--account <name>' not specified"],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const r = await env.cli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe('token audit', () => {
  it('records token.* events with actor, target and time, and no secret', async () => {
    const audit = readFileSync(env.auditFile, 'utf8');
    const events = readJsonLines(env.auditFile);
    for (const name of ['token.created', 'token.revoked', 'token.restored', 'token.rotated', 'token.deleted']) {
      const e = events.find((x) => x.event === name);
      expect(e, name).toBeDefined();
      expect(e).toMatchObject({ actor: `cli:${userInfo().username}` });
      expect(e!.target).toMatch(/^tok_/);
      expect(Number.isNaN(Date.parse(e!.time as string))).toBe(false);
    }
    for (const s of secrets) expect(audit).not.toContain(s);
  });
});

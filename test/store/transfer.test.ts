// Export and import: file → Redis → file round trip, importing the same export twice changes
// nothing the second time, conflicts refuse the whole import (or are kept / replaced when told),
// bad documents are refused with their position; and the CLI commands on the built binary.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../helpers/harness.js';
import { FileStore } from '../../src/store/file/file-store.js';
import { createAccount, createToken, revokeToken } from '../../src/store/operations.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { exportInventory, importInventory, parseExport } from '../../src/store/transfer.js';
import { sorted, TestClock } from './conformance.js';
import { deletePrefix, redisConfig, testPrefix } from './redis-support.js';

vi.setConfig({ testTimeout: 60_000 });

const dir = mkdtempSync(join(tmpdir(), 'kg-transfer-'));
const prefix = testPrefix();
const clock = new TestClock(Date.parse('2030-01-01T00:00:00Z'));
const redisStores: RedisStore[] = [];
const redis = () => {
  const s = new RedisStore(redisConfig({ prefix }));
  redisStores.push(s);
  return s;
};

afterAll(async () => {
  for (const s of redisStores) await s.close();
  await deletePrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

async function seedFile(file: string): Promise<FileStore> {
  const fs = new FileStore(file);
  await fs.update((d) => {
    createAccount(d, { name: 'ci-deployer', owner: 'ci@example.com', roles: ['reader'] }, clock.ctx());
    createAccount(d, { name: 'billing' }, clock.ctx());
    for (let i = 0; i < 3; i++) createToken(d, { account: i < 2 ? 'ci-deployer' : 'billing', label: `t${i}` }, clock.ctx());
    revokeToken(d, d.tokens[0]!.id, 'leaked', clock.ctx());
    d.certificates.push({ id: 'sha256:' + 'ab'.repeat(32), account: 'billing', match: 'fingerprint', value: 'ab'.repeat(32), nickname: 'laptop', endDate: null, scopes: null, policy: null, createdAt: clock.ctx().now.toISOString(), serial: null, notAfter: null });
  });
  return fs;
}

describe('export / import', () => {
  it('file → Redis → file: the same inventory; a second import of the same export changes nothing', async () => {
    const file = await seedFile(join(dir, 'source.yaml'));
    const original = await file.read();
    const { text } = await exportInventory(file, new Date(clock.ms));
    expect(text).toContain('kind: keygate-inventory');
    expect(text).toContain('formatVersion: 1');
    const { doc, problems } = parseExport('export.yaml', text);
    expect(problems).toEqual([]);

    const target = redis();
    const first = await importInventory(target, doc!.inventory, { actor: 'cli:test' });
    expect(first).toMatchObject({ applied: true, added: { accounts: 2, tokens: 3, certificates: 1 }, unchanged: 0, conflicts: [] });
    expect(sorted(await redis().read())).toEqual(sorted(original));
    const log = await target.readLog(0);
    expect(log).toHaveLength(1);
    expect(log[0]!.actor).toBe('cli:test');

    const second = await importInventory(target, doc!.inventory);
    expect(second).toMatchObject({ applied: true, added: { accounts: 0, tokens: 0, certificates: 0 }, unchanged: 6, replaced: 0, conflicts: [] });
    // Nothing was written: no new revision.
    expect(await target.readLog(0)).toHaveLength(1);

    const back = new FileStore(join(dir, 'back.yaml'));
    await importInventory(back, parseExport('x', (await exportInventory(target)).text).doc!.inventory);
    expect(sorted(await back.read())).toEqual(sorted(original));
  });

  it('a conflicting record refuses the whole import by default; keep and replace decide otherwise', async () => {
    const file = await seedFile(join(dir, 'conflict-source.yaml'));
    const incoming = (await file.read());
    const target = new FileStore(join(dir, 'conflict-target.yaml'));
    // The target already has billing, with another owner.
    await target.update((d) => createAccount(d, { name: 'billing', owner: 'fin@example.com' }, clock.ctx()));
    const before = await target.read();

    const refused = await importInventory(target, incoming);
    expect(refused.applied).toBe(false);
    expect(refused.conflicts).toEqual([{ kind: 'account', key: 'billing', reason: expect.stringContaining('different record') }]);
    expect(await target.read()).toEqual(before);

    const keep = new FileStore(join(dir, 'keep.yaml'));
    await keep.update((d) => createAccount(d, { name: 'billing', owner: 'fin@example.com' }, clock.ctx()));
    const kept = await importInventory(keep, incoming, { rule: 'keep' });
    expect(kept).toMatchObject({ applied: true, added: { accounts: 1, tokens: 3, certificates: 1 }, conflicts: [{ kind: 'account', key: 'billing' }] });
    expect((await keep.read()).accounts.find((a) => a.name === 'billing')!.owner).toBe('fin@example.com');

    const replaced = await importInventory(target, incoming, { rule: 'replace' });
    expect(replaced).toMatchObject({ applied: true, replaced: 1 });
    expect((await target.read()).accounts.find((a) => a.name === 'billing')!.owner).toBe('');
  });

  it('a token hash the target holds under another id is a conflict; so is a name differing in case', async () => {
    const file = await seedFile(join(dir, 'hash-source.yaml'));
    const incoming = await file.read();
    const target = new FileStore(join(dir, 'hash-target.yaml'));
    await target.update((d) => {
      createAccount(d, { name: 'CI-Deployer' }, clock.ctx());
      createAccount(d, { name: 'billing' }, clock.ctx());
      d.tokens.push({ ...structuredClone(incoming.tokens[2]!), id: 'tok_other' });
      d.accounts[1] = structuredClone(incoming.accounts.find((a) => a.name === 'billing')!);
    });
    const r = await importInventory(target, incoming);
    expect(r.applied).toBe(false);
    expect(r.conflicts.map((c) => `${c.kind} ${c.key}`).sort()).toEqual(['account ci-deployer', `token ${incoming.tokens[2]!.id}`].sort());
  });

  it('refuses a document that is not an export, of another version, or whose tokens name no account', () => {
    expect(parseExport('a.yaml', 'kind: other\nformatVersion: 1\ninventory: { version: 1 }\n').problems[0]!.message).toContain('not a keygate inventory export');
    expect(parseExport('a.yaml', 'kind: keygate-inventory\nformatVersion: 2\ninventory: { version: 1 }\n').problems[0]!.message).toContain('unsupported export formatVersion');
    const orphan = { kind: 'keygate-inventory', formatVersion: 1, inventory: { version: 1, tokens: [{ id: 'tok_x', account: 'nobody', hash: 'a'.repeat(64), status: 'active', createdAt: '2030-01-01T00:00:00Z' }] } };
    expect(parseExport('a.yaml', stringify(orphan)).problems[0]!.message).toContain('account "nobody" is not in the export');
    const bad = parseExport('a.yaml', 'kind: keygate-inventory\nformatVersion: 1\ninventory:\n  version: 1\n  accounts:\n    - name: "x"\n      bogus: 1\n');
    expect(bad.problems.find((p) => p.message.includes('bogus'))).toMatchObject({ file: 'a.yaml', line: 7 });
  });
});

describe('keygate store export / import (the CLI, file store)', () => {
  it('exports to a 0600 file and imports idempotently; conflicts exit 1 and write nothing', async () => {
    const work = mkdtempSync(join(dir, 'cli-'));
    const writeConfig = (name: string, store: string) => {
      const cfg = join(work, name);
      writeFileSync(cfg, stringify({ listen: { tls: { cert: 'x.crt', key: 'x.key' } }, routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:1' }], roles: { reader: ['things:read'] }, scopes: { 'things:read': ['GET /things/**'] }, store: { file: store }, audit: { output: join(work, 'audit.log') } }));
      return cfg;
    };
    await seedFile(join(work, 'a.yaml'));
    const a = writeConfig('a.keygate.yaml', 'a.yaml');
    const b = writeConfig('b.keygate.yaml', 'b.yaml');
    const out = join(work, 'export.yaml');
    const exp = await runCli(['store', 'export', '-c', a, '--out', out]);
    expect(exp.code, exp.stderr).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const imp = await runCli(['store', 'import', '-c', b, out]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toContain('added 2 accounts, 3 tokens, 1 certificate bindings');
    const again = await runCli(['store', 'import', '-c', b, out]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('added 0 accounts, 0 tokens, 0 certificate bindings; 6 unchanged');
    expect(sorted(await new FileStore(join(work, 'b.yaml')).read())).toEqual(sorted(await new FileStore(join(work, 'a.yaml')).read()));
    const audit = readFileSync(join(work, 'audit.log'), 'utf8');
    expect(audit).toContain('"event":"store.exported"');
    expect(audit).toContain('"event":"store.imported"');

    // Conflict: change the owner of one account in b, import again.
    const bFile = new FileStore(join(work, 'b.yaml'));
    await bFile.update((d) => void (d.accounts[0]!.owner = 'other@example.com'));
    const conflict = await runCli(['store', 'import', '-c', b, out]);
    expect(conflict.code).toBe(4); // a conflict (docs/cli.md exit codes)
    expect(conflict.stderr).toContain('conflict: account ci-deployer');
    expect(conflict.stderr).toContain('nothing imported');
    expect((await bFile.read()).accounts[0]!.owner).toBe('other@example.com');
    // Stdout export holds no secret-looking token and parses back.
    const stdout = await runCli(['store', 'export', '-c', a]);
    expect(stdout.code).toBe(0);
    expect(parseExport('stdout', stdout.stdout).problems).toEqual([]);
    expect(stdout.stdout).not.toMatch(/kg_[A-Za-z0-9]+_/);
    // Usage errors.
    expect((await runCli(['store', 'import', '-c', b, out, '--on-conflict', 'merge'])).code).toBe(2);
    const missing = await runCli(['store', 'import', '-c', b, join(work, 'nope.yaml')]);
    expect(missing.code).toBe(3); // a file named on the command line that does not exist
    expect(missing.stderr).toContain('cannot read');
  });
});

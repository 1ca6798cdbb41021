// The credential file's layout (store/file/layout.ts): one JSON record per line that YAML reads
// the same; v0.1's block YAML still loads and is rewritten in the new layout by the next
// change; hand edits are read with their YAML meaning and positioned file:line:col; a cut-short
// file is refused; a follower parses only the lines that changed and delivers exactly the
// records that changed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Document, parse as parseYaml } from 'yaml';
import { FileStore } from '../../src/store/file/file-store.js';
import { FollowCore } from '../../src/store/file/follow-core.js';
import { END_LINE, parseStoreFile, serializeStore } from '../../src/store/file/layout.js';
import { createAccount, createToken, revokeToken } from '../../src/store/operations.js';
import { storeSchema } from '../../src/store/schema.js';
import type { AccountRecord, CertBindingRecord, StoreChange, StoreData, TokenRecord } from '../../src/store/types.js';
import { OP_CONFIG } from './redis-support.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kg-layout-'));
  file = join(dir, 'credentials.yaml');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const AT = '2026-05-01T10:00:00.000Z';
const account = (name: string, over: Partial<AccountRecord> = {}): AccountRecord => ({ name, description: '', owner: '', endDate: null, roles: [], scopes: [], policy: null, disabled: false, createdAt: AT, updatedAt: AT, ...over });
const tid = (i: number) => `tok_${i.toString(36).padStart(14, '0')}`;
const token = (i: number, acct: string, over: Partial<TokenRecord> = {}): TokenRecord => ({
  id: tid(i),
  account: acct,
  label: `t${i}`,
  hash: i.toString(16).padStart(64, '0'),
  environment: null,
  scopes: null,
  policy: null,
  status: 'active',
  createdAt: AT,
  expiresAt: null,
  revokedAt: null,
  revokeReason: null,
  rotatedFrom: null,
  rotatedTo: null,
  ...over,
});
const binding = (i: number, acct: string): CertBindingRecord => {
  const fp = `f${i.toString(16).padStart(63, '0')}`;
  return { id: `sha256:${fp}`, account: acct, match: 'fingerprint', value: fp, nickname: '', endDate: null, scopes: null, policy: null, createdAt: AT, serial: null, notAfter: null };
};
function inventory(accounts: number, tokens: number, certs: number): StoreData {
  const names = Array.from({ length: accounts }, (_, i) => `svc-${i}`);
  return {
    version: 1,
    accounts: names.map((n) => account(n)),
    tokens: Array.from({ length: tokens }, (_, i) => token(i, names[i % accounts]!)),
    certificates: Array.from({ length: certs }, (_, i) => binding(i, names[i % accounts]!)),
  };
}

/** What v0.1 wrote: block YAML from the yaml library, the header comment, the end line. */
function v01(data: StoreData): string {
  const doc = new Document(data);
  doc.commentBefore = ' keygate credential store. Managed by `keygate account|token|cert` and the admin API.\n Holds no secret: tokens are stored as SHA-256 hashes only.\n keygate ends this file with the line "# end of keygate credential store";\n a file that starts with this header and lacks that line is taken as cut short and refused.';
  return `${doc.toString({ lineWidth: 0 })}${END_LINE}\n`;
}

const withoutDigest = (text: string) => text.replace(/^# sha256 of the lines above: .*\n/m, '');

// Free text as anyone may type it: every Unicode character, controls and line breaks included.
const text = fc.string({ unit: 'binary', maxLength: 12 });
const records = fc
  .record({
    description: text,
    owner: text,
    label: text,
    nickname: text,
    reason: fc.option(text, { nil: null }),
    scopes: fc.option(fc.array(text.filter((s) => s.length > 0), { maxLength: 3 }), { nil: null }),
    endDate: fc.option(fc.constantFrom('2027-01-31', '2030-12-31'), { nil: null }),
    disabled: fc.boolean(),
    cn: text.filter((s) => s.length > 0),
  })
  .map((r): StoreData => ({
    version: 1,
    accounts: [account('a', { description: r.description, owner: r.owner, endDate: r.endDate, disabled: r.disabled, scopes: r.scopes ?? [] })],
    tokens: [token(1, 'a', { label: r.label, scopes: r.scopes, revokeReason: r.reason, status: r.reason === null ? 'active' : 'revoked' })],
    certificates: [{ ...binding(1, 'a'), id: 'crt_x1', match: 'cn', value: r.cn, nickname: r.nickname }],
  }));

describe('the layout keygate writes', () => {
  it('reads back the same data, line by line, and YAML reads the same document (property)', () => {
    fc.assert(
      fc.property(records, (data) => {
        const written = serializeStore(data);
        // Nothing another YAML reader or an editor might take for a line break or refuse.
        expect(written).not.toMatch(/[\u007f-\u009f\u2028\u2029\ufeff]/);
        const parsed = parseStoreFile(file, Buffer.from(written));
        expect(parsed.problems).toEqual([]);
        expect(parsed.entries, 'read line by line, not by the YAML parser').toBeDefined();
        expect(parsed.data).toEqual(data);
        // JSON is YAML: the full YAML parser agrees on every character.
        expect(storeSchema.parse(parseYaml(written))).toEqual(data);
        // Without the digest every line is validated, and still reads the same.
        const checked = parseStoreFile(file, Buffer.from(withoutDigest(written)));
        expect(checked.problems).toEqual([]);
        expect(checked.entries).toBeDefined();
        expect(checked.data).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });

  it('writes one record per line between the header and the end line', () => {
    const lines = serializeStore(inventory(2, 3, 1)).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^# keygate credential store/);
    expect(lines.filter((l) => l.startsWith('  - {"'))).toHaveLength(6);
    expect(lines.at(-2)).toMatch(/^# sha256 of the lines above: [0-9a-f]{64}$/);
    expect(lines.at(-1)).toBe(END_LINE);
    expect(serializeStore({ version: 1, accounts: [], tokens: [], certificates: [] })).toContain('accounts: []\ntokens: []\ncertificates: []\n');
  });

  it('refuses a file cut short anywhere before its end line', () => {
    const whole = serializeStore(inventory(3, 20, 3));
    for (const at of [whole.indexOf('version: 1'), Math.floor(whole.length / 2), whole.length - END_LINE.length - 2]) {
      const parsed = parseStoreFile(file, Buffer.from(whole.slice(0, at)));
      expect(parsed.data).toBeUndefined();
      expect(parsed.problems[0]!.message).toMatch(/cut short/);
    }
  });
});

describe('v0.1 files and hand edits', () => {
  it('loads a v0.1 file unchanged and rewrites it in the new layout on the next change', async () => {
    const data = inventory(2, 3, 1);
    writeFileSync(file, v01(data));
    expect(readFileSync(file, 'utf8')).toContain('  - name: svc-0\n');
    const store = new FileStore(file, { reader: 'thread' });
    expect(await store.read()).toEqual(data);
    await store.update((d) => revokeToken(d, d.tokens[0]!.id, 'migrated', { config: OP_CONFIG, now: new Date(AT) }));
    const after = readFileSync(file, 'utf8');
    expect(after).not.toContain('  - name: svc-0\n');
    expect(after.split('\n').filter((l) => l.startsWith('  - {"'))).toHaveLength(6);
    const parsed = parseStoreFile(file, Buffer.from(after));
    expect(parsed.entries).toBeDefined();
    expect(parsed.data!.tokens[0]!.status).toBe('revoked');
    expect(parsed.data!.tokens.slice(1)).toEqual(data.tokens.slice(1));
  });

  it('reads a line edited in YAML flow style with its YAML meaning, the other lines as JSON', () => {
    const data = inventory(2, 3, 0);
    const lines = serializeStore(data).split('\n');
    const i = lines.findIndex((l) => l.includes('"tok_00000000000001"'));
    lines[i] = `  - {id: tok_00000000000001, account: svc-1, label: 'by hand', hash: '${'1'.padStart(64, '0')}', status: revoked, createdAt: ${AT}}   `;
    const parsed = parseStoreFile(file, Buffer.from(lines.join('\n')));
    expect(parsed.problems).toEqual([]);
    expect(parsed.entries).toBeDefined();
    expect(parsed.data!.tokens[1]).toEqual(token(1, 'svc-1', { label: 'by hand', status: 'revoked' }));
    expect(parsed.entries!.tokens[1]!.canonical).toBe(false);
  });

  it('positions a bad value of an edited line at its line and column, and validates every line once the digest no longer matches', () => {
    const lines = serializeStore(inventory(2, 3, 0)).split('\n');
    const i = lines.findIndex((l) => l.includes('"tok_00000000000002"'));
    lines[i] = lines[i]!.replace('"status":"active"', '"status":"paused"');
    const parsed = parseStoreFile(file, Buffer.from(lines.join('\n')));
    expect(parsed.data).toBeUndefined();
    expect(parsed.problems).toHaveLength(1);
    const p = parsed.problems[0]!;
    expect(p.line).toBe(i + 1);
    expect(p.col).toBe(lines[i]!.indexOf('"paused"') + 1);
    expect(p.message).toMatch(/^tokens\[2\]\.status: /);
  });

  it('hands a line YAML reads differently from JSON (a duplicate key) to the YAML parser, which says where', () => {
    const lines = serializeStore(inventory(1, 2, 0)).split('\n');
    const i = lines.findIndex((l) => l.includes('"tok_00000000000001"'));
    lines[i] = lines[i]!.replace('{"id":"tok_00000000000001",', '{"id":"tok_00000000000001","id":"tok_00000000000009",');
    const parsed = parseStoreFile(file, Buffer.from(lines.join('\n')));
    expect(parsed.data).toBeUndefined();
    expect(parsed.entries).toBeUndefined(); // read whole, as YAML
    expect(parsed.problems[0]).toMatchObject({ line: i + 1 });
    expect(parsed.problems[0]!.message).toMatch(/YAML: .*unique/i);
  });

  it('still positions problems of a hand-written block YAML file', async () => {
    writeFileSync(file, `version: 1\naccounts:\n  - name: svc\n    createdAt: ${AT}\n    updatedAt: ${AT}\n    colour: blue\n`);
    const { data, problems } = await new FileStore(file).load();
    expect(data).toBeUndefined();
    expect(problems).toEqual([{ file, line: 6, col: 5, message: 'unknown key "colour" in accounts[0]' }]);
  });

  it('positions cross-check problems of the new layout at the record line', async () => {
    const data = inventory(2, 4, 0);
    data.tokens[3]!.account = 'nobody';
    writeFileSync(file, serializeStore(data));
    const lines = readFileSync(file, 'utf8').split('\n');
    const { problems } = await new FileStore(file).load(() => [{ path: ['tokens', 3, 'account'], message: 'unknown account' }]);
    const i = lines.findIndex((l) => l.includes('"nobody"'));
    expect(problems).toEqual([{ file, line: i + 1, col: lines[i]!.indexOf('"account":') + 1, message: 'unknown account' }]);
  });
});

describe('following the file', () => {
  const ctx = () => ({ config: OP_CONFIG, now: new Date(AT) });

  it('parses only the lines that changed, and delivers exactly the records that changed', async () => {
    writeFileSync(file, serializeStore(inventory(200, 1600, 200)));
    const core = new FollowCore(file);
    const first = await core.read();
    expect(first.kind).toBe('snapshot');
    expect(core.lastParsed).toBe(2000);

    const store = new FileStore(file, { reader: 'thread' });
    await store.update((d) => revokeToken(d, tid(100), 'test', ctx()));
    let out = await core.read();
    expect(core.lastParsed).toBe(1);
    expect(out).toMatchObject({ kind: 'changes', changes: [{ op: 'put', kind: 'token', record: { id: tid(100), status: 'revoked' } }] });

    // An account, a token and a deletion in one version: three changes, accounts first, deletes last.
    await store.update((d) => {
      createAccount(d, { name: 'new-svc' }, ctx());
      createToken(d, { account: 'new-svc' }, ctx());
      d.certificates = d.certificates.filter((c) => c !== d.certificates[5]);
    });
    out = await core.read();
    expect(core.lastParsed).toBe(2);
    const changes = (out as { changes: StoreChange[] }).changes;
    expect(changes.map((c) => `${c.op} ${c.kind}`)).toEqual(['put account', 'put token', 'delete certificate']);

    // Nothing changed: nothing parsed, nothing delivered.
    writeFileSync(file, readFileSync(file));
    out = await core.read();
    expect(core.lastParsed).toBe(0);
    expect(out).toMatchObject({ kind: 'changes', changes: [] });
  });

  it('refuses a version with two records of one key, and keeps comparing with the last one delivered', async () => {
    const data = inventory(2, 3, 0);
    writeFileSync(file, serializeStore(data));
    const core = new FollowCore(file);
    await core.read();
    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"tok_00000000000001"'));
    const twice = [...lines.slice(0, i + 1), lines[i]!.replace('"label":"t1"', '"label":"again"'), ...lines.slice(i + 1)];
    writeFileSync(file, twice.join('\n'));
    const refused = await core.read();
    expect(refused).toEqual({ kind: 'rejected', problems: [{ file, line: i + 2, col: 5 + twice[i + 1]!.indexOf('"id":') - 4, message: 'duplicate credential id "tok_00000000000001"' }] });
    data.tokens[2]!.label = 'changed';
    writeFileSync(file, serializeStore(data));
    expect(await core.read()).toMatchObject({ kind: 'changes', changes: [{ op: 'put', kind: 'token', record: data.tokens[2] }] });
  });

  it("keeps none of the file's text between reads, and still puts a problem at its field, also after a write", async () => {
    writeFileSync(file, serializeStore(inventory(20, 100, 10)));
    const core = new FollowCore(file);
    const first = await core.read();
    if (first.kind !== 'snapshot') throw new Error(first.kind);
    // Every string the reader holds: keys, digests, its file's name — never a record line.
    const held = (root: unknown): string[] => {
      const out: string[] = [];
      const seen = new Set<unknown>();
      const walk = (v: unknown): void => {
        if (typeof v === 'string') return void out.push(v);
        if (typeof v !== 'object' || v === null || seen.has(v)) return;
        seen.add(v);
        if (v instanceof Map) {
          for (const [k, x] of v) {
            walk(k);
            walk(x);
          }
        }
        else for (const x of Object.values(v)) walk(x);
      };
      walk(root);
      return out;
    };
    // Before, the lines were kept by their text (and with them the whole file's).
    expect(held(core).filter((x) => x.includes('"id":'))).toEqual([]);
    // What the reader thread does after a large read: the same state, in new objects.
    const before = held(core).sort();
    core.compact();
    expect(held(core).sort()).toEqual(before);
    const at = (key: string, field: string) => {
      const lines = readFileSync(file, 'utf8').split('\n');
      const i = lines.findIndex((l) => l.includes(`"${key}"`));
      return { line: i + 1, col: lines[i]!.indexOf(`"${field}":`) + 1 };
    };
    expect(await core.locate([{ list: 'tokens', key: tid(42), path: ['label'], message: 'x' }])).toEqual([{ file, ...at(tid(42), 'label'), message: 'x' }]);
    // A write puts the changed line in place and a new one at the end; positions follow without a read.
    const changed = { ...first.data.tokens[42]!, label: 'a label much longer than the one before' };
    const added = { ...first.data.tokens[0]!, id: tid(500), hash: 'e'.repeat(64) };
    const w = await core.write(first.version, [
      { op: 'put', kind: 'token', record: changed },
      { op: 'put', kind: 'token', record: added },
      { op: 'delete', kind: 'token', key: tid(3) },
    ]);
    expect(w.kind).toBe('written');
    expect(core.lastParsed).toBe(2);
    expect(held(core).filter((x) => x.includes('"id":'))).toEqual([]);
    expect(await core.locate([{ list: 'tokens', key: tid(500), path: ['hash'], message: 'y' }, { list: 'tokens', key: tid(42), path: ['label'], message: 'x' }])).toEqual([
      { file, ...at(tid(500), 'hash'), message: 'y' },
      { file, ...at(tid(42), 'label'), message: 'x' },
    ]);
    // What it wrote is what it holds: reading it back finds nothing new.
    expect(await core.read()).toMatchObject({ kind: 'changes', changes: [] });
    const data = inventory(20, 100, 10);
    data.tokens[42] = changed;
    data.tokens.push(added);
    data.tokens = data.tokens.filter((t) => t.id !== tid(3));
    expect(readFileSync(file, 'utf8')).toBe(serializeStore(data));
  });

  it('a FileStore follower delivers the change of another writer, and locates problems by record', async () => {
    writeFileSync(file, serializeStore(inventory(20, 100, 10)));
    const store = new FileStore(file, { reader: 'thread' });
    const events: Array<{ revision: number; changes?: readonly StoreChange[]; snapshot?: StoreData }> = [];
    const follower = store.follow({ onSnapshot: (snapshot, revision) => events.push({ revision, snapshot }), onChanges: (changes, revision) => events.push({ revision, changes }) });
    try {
      await follower.sync();
      await new FileStore(file).update((d) => revokeToken(d, tid(42), undefined, ctx()));
      await follower.sync();
      expect(events.map((e) => e.revision)).toEqual([1, 2]);
      expect(events[1]!.changes).toHaveLength(1);
      const snapshot = events[0]!.snapshot!;
      const lines = readFileSync(file, 'utf8').split('\n');
      const located = await store.locate([{ path: ['tokens', 42, 'label'], message: 'x' }], snapshot);
      expect(located[0]).toMatchObject({ line: lines.findIndex((l) => l.includes(`"${tid(42)}"`)) + 1 });
    } finally {
      follower.stop();
    }
  });
});

// The incremental cross-check of a change (store/check.ts changesPass, over the credential
// index) says what checkStoreData says of the whole version the change leads to: the same
// verdict on named cases (each accepted change beside its refused twin) and on thousands of
// random change batches applied one after another, and it asks the index only about what the
// change touches, not about the whole inventory.
import { afterAll, describe, expect, it } from 'vitest';
import { configSchema, type KeygateConfig } from '../../src/config/schema.js';
import { UpstreamPools } from '../../src/forward/upstream-pools.js';
import { compileConfig, type CompiledConfig } from '../../src/runtime/compile.js';
import { LiveIndex } from '../../src/runtime/credential-index.js';
import { changesPass, checkStoreData, type CheckedState } from '../../src/store/check.js';
import { applyChanges, diffStoreData } from '../../src/store/diff.js';
import type { AccountRecord, CertBindingRecord, StoreChange, StoreData, TokenRecord } from '../../src/store/types.js';
import { seededRandom } from '../helpers/seeded-random.js';

const AT = '2030-01-01T00:00:00.000Z';
const pools = new UpstreamPools();
afterAll(() => pools.closeAll(true));

const config: KeygateConfig = configSchema.parse({
  listen: { tls: { cert: 'x.crt', key: 'x.key' } },
  routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:1' }],
  scopes: { 'a:read': ['GET /a'], 'a:write': ['POST /a'], 'b:read': ['GET /b'] },
  roles: { reader: ['a:read'], writer: ['a:read', 'a:write'], other: ['b:read'] },
  policies: { slow: { rate: '1/s' } },
});
const compiled: CompiledConfig = compileConfig(config, pools).compiled!;

const account = (name: string, over: Partial<AccountRecord> = {}): AccountRecord => ({ name, description: '', owner: '', endDate: null, roles: ['writer'], scopes: [], policy: null, disabled: false, createdAt: AT, updatedAt: AT, ...over });
const token = (id: string, acct: string, over: Partial<TokenRecord> = {}): TokenRecord => ({ id, account: acct, label: '', hash: id.padEnd(64, '0').replace(/[^0-9a-f]/g, 'a').slice(0, 64), environment: null, scopes: null, policy: null, status: 'active', createdAt: AT, expiresAt: null, revokedAt: null, revokeReason: null, rotatedFrom: null, rotatedTo: null, ...over });
const cert = (id: string, acct: string, over: Partial<CertBindingRecord> = {}): CertBindingRecord => ({ id, account: acct, match: 'cn', value: id, nickname: '', endDate: null, scopes: null, policy: null, createdAt: AT, serial: null, notAfter: null, ...over });
const put = (record: AccountRecord | TokenRecord | CertBindingRecord): StoreChange =>
  'name' in record ? { op: 'put', kind: 'account', record } : 'hash' in record ? { op: 'put', kind: 'token', record } : { op: 'put', kind: 'certificate', record };
const del = (kind: StoreChange['kind'], key: string): StoreChange => ({ op: 'delete', kind, key });

function base(): StoreData {
  return {
    version: 1,
    accounts: [account('alpha'), account('beta', { roles: ['reader'] }), account('empty')],
    tokens: [token('tok_a1', 'alpha', { scopes: ['a:write'] }), token('tok_a2', 'alpha'), token('tok_b1', 'beta', { scopes: ['a:read'] })],
    certificates: [cert('crt_a', 'alpha'), cert('crt_b', 'beta', { match: 'uri', value: 'spiffe://x/**' })],
  };
}

function verdicts(data: StoreData, changes: StoreChange[]): { fast: boolean; full: boolean } {
  expect(checkStoreData(data, config)).toEqual([]);
  const fast = changesPass(LiveIndex.build(compiled, data), changes, config);
  const full = checkStoreData(applyChanges(data, changes), config).length === 0;
  return { fast, full };
}

describe('changesPass: named cases, each beside its refused twin', () => {
  const cases: Array<[string, StoreChange[], boolean]> = [
    ['a revocation', [put(token('tok_a2', 'alpha', { status: 'revoked' }))], true],
    ['a new token', [put(token('tok_new', 'beta'))], true],
    ['a token for an account that does not exist', [put(token('tok_new', 'nobody'))], false],
    ['a token with own scopes inside the account\'s', [put(token('tok_new', 'beta', { scopes: ['a:read'] }))], true],
    ['a token with a scope outside the account\'s', [put(token('tok_new', 'beta', { scopes: ['a:write'] }))], false],
    ['a token with an unknown scope', [put(token('tok_new', 'alpha', { scopes: ['zz:read'] }))], false],
    ['a token with a known policy', [put(token('tok_new', 'alpha', { policy: 'slow' }))], true],
    ['a token with an unknown policy', [put(token('tok_new', 'alpha', { policy: 'fast' }))], false],
    ['a token with another token\'s hash', [put(token('tok_new', 'alpha', { hash: token('tok_a1', 'alpha').hash }))], false],
    ['a token that takes over a hash freed in the same change', [del('token', 'tok_a1'), put(token('tok_new', 'alpha', { hash: token('tok_a1', 'alpha').hash }))], true],
    ['a token with a binding\'s id', [put(token('crt_a', 'alpha'))], false],
    ['an account keeping the roles its tokens need', [put(account('alpha', { description: 'renamed owner', roles: ['writer'] }))], true],
    ['an account losing a scope one of its tokens has', [put(account('alpha', { roles: ['reader'] }))], false],
    ['an account losing a scope after the token that had it went', [del('token', 'tok_a1'), put(account('alpha', { roles: ['reader'] }))], true],
    ['an account with an unknown role', [put(account('beta', { roles: ['root'] }))], false],
    ['an account whose name differs from another only in case', [put(account('Alpha'))], false],
    ['the same, once the other is gone', [del('token', 'tok_a1'), del('token', 'tok_a2'), del('certificate', 'crt_a'), del('account', 'alpha'), put(account('Alpha'))], true],
    ['deleting an account with credentials', [del('account', 'beta')], false],
    ['deleting an account without', [del('account', 'empty')], true],
    ['a binding whose match and value another binding has', [put(cert('crt_new', 'beta', { value: 'crt_a' }))], false],
    ['a binding of a new value', [put(cert('crt_new', 'beta', { value: 'svc.example' }))], true],
    ['a fingerprint binding that is not 64 hex characters', [put(cert('crt_new', 'beta', { match: 'fingerprint', value: 'abc' }))], false],
    ['a URI pattern that does not compile', [put(cert('crt_new', 'beta', { match: 'uri', value: 'spiffe://x/***' }))], false],
    ['moving a binding to another account', [put(cert('crt_a', 'beta'))], true],
  ];
  it.each(cases)('%s', (_name, changes, expected) => {
    const { fast, full } = verdicts(base(), changes);
    expect(full, 'checkStoreData').toBe(expected);
    expect(fast, 'changesPass').toBe(expected);
  });
});

describe('changesPass: random change batches', () => {
  it('agrees with checkStoreData on 3,000 batches applied one after another, and the index stays the data', () => {
    const random = seededRandom(20300101);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const names = ['alpha', 'beta', 'empty', 'Alpha', 'gamma', 'BETA', 'delta'];
    const ids = ['tok_a1', 'tok_a2', 'tok_b1', 'tok_c1', 'tok_c2', 'crt_a', 'crt_b', 'crt_c', 'crt_d'];
    const hashes = ['tok_a1', 'tok_a2', 'tok_b1', 'tok_c1', 'tok_x'].map((h) => token(h, '').hash);
    const scopeSets = [null, ['a:read'], ['a:write'], ['b:read'], ['a:read', 'a:write'], ['zz:x']];
    const roleSets = [['writer'], ['reader'], ['other'], [], ['writer', 'other'], ['root']];
    const values: Array<Pick<CertBindingRecord, 'match' | 'value'>> = [
      { match: 'cn', value: 'one' },
      { match: 'cn', value: 'two' },
      { match: 'dns', value: 'svc.example' },
      { match: 'uri', value: 'spiffe://x/**' },
      { match: 'uri', value: 'spiffe://x/***' },
      { match: 'fingerprint', value: 'a'.repeat(64) },
      { match: 'fingerprint', value: 'nothex' },
    ];
    const change = (data: StoreData): StoreChange => {
      const r = random();
      if (r < 0.15) return put(account(pick(names), { roles: pick(roleSets), scopes: random() < 0.8 ? [] : [pick(['b:read', 'zz:x'])], policy: random() < 0.9 ? null : pick(['slow', 'fast']) }));
      if (r < 0.25) return del('account', pick(data.accounts.length && random() < 0.7 ? data.accounts.map((a) => a.name) : names));
      if (r < 0.55) return put(token(pick(ids.filter((i) => i.startsWith('tok'))) + (random() < 0.3 ? 'x' : ''), pick(names), { hash: pick(hashes), scopes: pick(scopeSets), policy: random() < 0.9 ? null : pick(['slow', 'fast']), status: random() < 0.5 ? 'active' : 'revoked' }));
      if (r < 0.65) return put(token(pick(ids), pick(names)));
      if (r < 0.85) return put(cert(pick(ids.filter((i) => i.startsWith('crt'))), pick(names), { ...pick(values), scopes: pick(scopeSets) }));
      const any = [...data.tokens.map((t) => ['token', t.id] as const), ...data.certificates.map((c) => ['certificate', c.id] as const)];
      const [kind, key] = any.length ? pick(any) : (['token', 'tok_none'] as const);
      return del(kind, key);
    };

    let data = base();
    let index = LiveIndex.build(compiled, data);
    const tally = { accepted: 0, refused: 0 };
    for (let step = 0; step < 3_000; step++) {
      // As a store delivers them: what diffStoreData says turns one version into the next
      // (accounts put first, deleted last: the order the index relies on).
      const next = applyChanges(data, Array.from({ length: 1 + Math.floor(random() * 3) }, () => change(data)));
      const changes = diffStoreData(data, next);
      if (changes.length === 0) continue;
      const full = checkStoreData(next, config).length === 0;
      const fast = changesPass(index, changes, config);
      expect({ step, changes, fast }).toEqual({ step, changes, fast: full });
      if (!full) {
        tally.refused++;
        continue;
      }
      tally.accepted++;
      data = next;
      index.apply(changes);
      // Now and then, the index built from scratch must agree with the one changed in place.
      if (step % 250 === 0) {
        const fresh = LiveIndex.build(compiled, data);
        for (const probe of [...names, ...names.map((n) => n.toLowerCase())]) {
          expect(index.account(probe)).toEqual(fresh.account(probe));
          expect(index.accountNamedLike(probe)).toBe(fresh.accountNamedLike(probe));
        }
        for (const v of values) expect(index.bindingOf(`${v.match}:${v.value}`)).toBe(fresh.bindingOf(`${v.match}:${v.value}`));
        for (const h of hashes) expect(index.tokenWithHash(h)).toBe(fresh.tokenWithHash(h));
        index = fresh;
      }
    }
    // Both verdicts were well exercised.
    expect(tally.accepted).toBeGreaterThan(300);
    expect(tally.refused).toBeGreaterThan(300);
  });
});

describe('changesPass: cost proportional to the change', () => {
  it('a revocation in an inventory of 20,000 tokens asks the index a handful of questions', () => {
    const accounts = Array.from({ length: 20 }, (_, i) => account(`svc-${i}`));
    const tokens = Array.from({ length: 20_000 }, (_, i) => token(`tok_${i}`, `svc-${i % 20}`, { hash: i.toString(16).padStart(64, '0') }));
    const index = LiveIndex.build(compiled, { version: 1, accounts, tokens, certificates: [] });
    let questions = 0;
    const counting = new Proxy(index, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          questions++;
          const out = (v as (...a: unknown[]) => unknown).apply(target, args);
          // An iterable answer counts once per element read.
          if (out && typeof out === 'object' && Symbol.iterator in out && typeof out !== 'string') {
            return (function* () {
              for (const x of out as Iterable<unknown>) {
                questions++;
                yield x;
              }
            })();
          }
          return out;
        };
      },
    }) as CheckedState;
    expect(changesPass(counting, [put({ ...tokens[123]!, status: 'revoked', revokedAt: AT })], config)).toBe(true);
    expect(questions).toBeLessThan(10);
    // Its refused twin costs as little: a scope the account lacks.
    questions = 0;
    expect(changesPass(counting, [put({ ...tokens[123]!, scopes: ['b:read'] })], config)).toBe(false);
    expect(questions).toBeLessThan(10);
    // An account change looks at that account's credentials (1,000), not at all 20,000.
    questions = 0;
    expect(changesPass(counting, [put(account('svc-3', { roles: ['reader'] }))], config)).toBe(true);
    expect(questions).toBeGreaterThan(1_000);
    expect(questions).toBeLessThan(3_100);
  });
});

// The fast check of records read from Redis (src/store/record-check.ts) may only say yes
// to what the schema accepts unchanged: every record it passes is checked against zod here,
// over the records the lifecycle operations write and thousands of damaged variants of them
// (a key missing or added, each field given each wrong type, dates in every form and out of
// range, ids and hashes that do not match). The twin: it does pass what keygate writes, and
// the damaged ones are refused by both.
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { storeSchema } from '../../src/store/schema.js';
import { isCompleteRecord } from '../../src/store/record-check.js';
import type { KindCode } from '../../src/store/inventory.js';
import { createAccount, createToken, revokeToken, rotateToken } from '../../src/store/operations.js';
import type { StoreData } from '../../src/store/types.js';
import { TestClock } from './conformance.js';

const LIST = { a: 'accounts', t: 'tokens', c: 'certificates' } as const;

function zod(code: KindCode, v: unknown): { ok: boolean; value?: unknown } {
  const r = storeSchema.safeParse({ version: 1, [LIST[code]]: [v] });
  return r.success ? { ok: true, value: (r.data[LIST[code]] as unknown[])[0] } : { ok: false };
}

/** A small deterministic generator (xorshift32), so that a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const clock = new TestClock(Date.parse('2030-06-15T12:34:56.789Z'));
const d: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
createAccount(d, { name: 'svc one', description: 'd', owner: 'o@example.com', endDate: '2031-02-28', roles: ['reader'], scopes: ['things:read'] }, clock.ctx());
createAccount(d, { name: 'svc-2' }, clock.ctx());
createToken(d, { account: 'svc one', label: 'l', scopes: ['things:read'], expiresAt: '2031-01-01T00:00:00.000Z' }, clock.ctx());
createToken(d, { account: 'svc-2' }, clock.ctx());
revokeToken(d, d.tokens[1]!.id, 'leak', clock.ctx());
rotateToken(d, d.tokens[0]!.id, 3_600_000, clock.ctx());
const certificates = [
  { id: 'sha256:' + 'ab'.repeat(32), account: 'svc-2', match: 'fingerprint', value: 'ab'.repeat(32), nickname: '', endDate: null, scopes: null, policy: null, createdAt: '2030-01-01T00:00:00.000Z', serial: '01', notAfter: '2031-01-01T00:00:00.000Z' },
  { id: 'crt_x1', account: 'svc one', match: 'uri', value: 'spiffe://x/**', nickname: 'n', endDate: '2032-02-29T23:59:59.999Z', scopes: ['things:read'], policy: 'default', createdAt: '2030-01-01T00:00:00.000Z', serial: null, notAfter: null },
];
const samples: Array<[KindCode, Record<string, unknown>]> = [
  ...d.accounts.map((r) => ['a', JSON.parse(JSON.stringify(r))] as [KindCode, Record<string, unknown>]),
  ...d.tokens.map((r) => ['t', JSON.parse(JSON.stringify(r))] as [KindCode, Record<string, unknown>]),
  ...certificates.map((r) => ['c', r] as [KindCode, Record<string, unknown>]),
];

const WRONG: unknown[] = [
  null, true, false, 0, 1, -1, 1.5, '', ' ', 'x', 'active', 'revoked', 'uri', [], [''], ['a'], ['a', ''], [1], {}, { a: 1 },
  'tok_', 'tok_abc', 'tok_' + 'a'.repeat(33), 'tok_a-b', 'a'.repeat(64), 'A'.repeat(64), 'a'.repeat(63), ' svc', 'svc ', 'sv/c', 'x'.repeat(65),
  '2030-01-01', '2030-02-29', '2032-02-29', '2030-13-01', '1969-12-31', '2030-1-01',
  '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00Z', '2030-01-01T00:00Z', '2030-01-01t00:00:00.000z', '2030-01-01T00:00:00.000+02:00', '2030-01-01T00:00:00.000+24:00',
  '2030-02-29T00:00:00.000Z', '2032-02-29T00:00:00.000Z', '2100-02-29T00:00:00.000Z', '2000-02-29T00:00:00.000Z', '2030-04-31T00:00:00.000Z', '2030-00-10T00:00:00.000Z',
  '2030-01-01T24:00:00.000Z', '2030-01-01T23:60:00.000Z', '2030-01-01T23:59:60.000Z', '1969-12-31T23:59:59.999Z', '1970-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z',
  '2030-01-01T00:00:00.00aZ', '2030-01-01T00:00:00,000Z', '2030-01-01 00:00:00.000Z', '+02030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Y', '２030-01-01T00:00:00.000Z',
];

describe('the fast record check', () => {
  it('passes every record the lifecycle operations write, exactly as zod reads it', () => {
    for (const [code, r] of samples) {
      expect(isCompleteRecord(code, r), JSON.stringify(r)).toBe(true);
      expect(zod(code, r)).toEqual({ ok: true, value: r });
    }
  });

  it('never passes what zod refuses or would change, over thousands of damaged records', () => {
    const next = rng(20301);
    let passed = 0;
    let refusedByBoth = 0;
    const variants: Array<[KindCode, unknown]> = [];
    for (const [code, r] of samples) {
      const keys = Object.keys(r);
      for (const k of keys) {
        const { [k]: _gone, ...without } = r;
        variants.push([code, without]);
        for (const w of WRONG) variants.push([code, { ...r, [k]: w }]);
      }
      for (const extra of ['extra', '__proto__', 'constructor', 'Id']) variants.push([code, JSON.parse(JSON.stringify({ ...r }).replace(/^\{/, `{"${extra}":1,`))]);
      // Random combinations of two and three damaged fields.
      for (let i = 0; i < 400; i++) {
        const v: Record<string, unknown> = { ...r };
        for (let j = 0; j < 2 + Math.floor(next() * 2); j++) v[keys[Math.floor(next() * keys.length)]!] = WRONG[Math.floor(next() * WRONG.length)];
        variants.push([code, v]);
      }
      variants.push([code, [r]], [code, null], [code, 'x'], [code, Object.assign(Object.create(null) as object, r)]);
    }
    for (const [code, v] of variants) {
      const fast = isCompleteRecord(code, v);
      const slow = zod(code, v);
      if (fast) {
        passed++;
        expect(slow.ok && isDeepStrictEqual(slow.value, v), `fast check passed what zod does not take as it is: ${code} ${JSON.stringify(v)}`).toBe(true);
      } else if (!slow.ok) refusedByBoth++;
    }
    // The variants reach both sides of the check.
    expect(passed).toBeGreaterThan(100);
    expect(refusedByBoth).toBeGreaterThan(1_000);
  });
});

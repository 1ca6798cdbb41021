// The token format lets keygate refuse a mistyped or truncated token before any lookup and
// lets secret scanners recognise one. The checksum promise is checked exhaustively: every
// single-character change of a real token is refused.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { lookupToken, sameDigest } from '../../src/identify/lookup.js';
import { base62, hashToken, mintToken, newId, parseToken, TOKEN_ID_PATTERN, tokenPrefix } from '../../src/store/token-format.js';
import type { CredentialIndex, Principal } from '../../src/vocabulary/principal.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

describe('mintToken', () => {
  it('is kg_ + 33 base62 characters of body + 6 of checksum', () => {
    const t = mintToken(null);
    expect(t).toMatch(/^kg_[0-9A-Za-z]{39}$/);
    expect(t).toHaveLength(42);
    expect(parseToken(t)).toEqual({ ok: true, environment: null });
  });

  it('embeds the environment in the prefix', () => {
    const t = mintToken('prod');
    expect(t).toMatch(/^kg_prod_[0-9A-Za-z]{39}$/);
    expect(parseToken(t)).toEqual({ ok: true, environment: 'prod' });
    expect(tokenPrefix('prod')).toBe('kg_prod_');
    expect(tokenPrefix(null)).toBe('kg_');
  });

  it('fits the longest environment within the 64-character limit', () => {
    const t = mintToken('abcdefghijklmnop');
    expect(t.length).toBeLessThanOrEqual(64);
    expect(parseToken(t)).toEqual({ ok: true, environment: 'abcdefghijklmnop' });
  });

  it('never repeats itself and spreads over the whole alphabet', () => {
    const sample = Array.from({ length: 2_000 }, () => mintToken(null));
    expect(new Set(sample).size).toBe(sample.length);
    // 192 random bits fill the 33-character body; the leading digit of 62^33 > 2^192 is the
    // only one that is biased, so look at the rest.
    const seen = new Set(sample.flatMap((t) => [...t.slice(4, 36)]));
    expect(seen.size).toBe(62);
  });
});

describe('parseToken', () => {
  const token = mintToken(null);
  const prodToken = mintToken('prod');

  it('refuses every single-character substitution of a real token', () => {
    for (const t of [token, prodToken]) {
      let tried = 0;
      for (let i = 0; i < t.length; i++) {
        for (const c of ALPHABET + '_-') {
          if (c === t[i]) continue;
          const changed = t.slice(0, i) + c + t.slice(i + 1);
          if (parseToken(changed).ok) throw new Error(`accepted ${changed} (position ${i})`);
          tried++;
        }
      }
      expect(tried).toBeGreaterThan(t.length * 60);
    }
  });

  it('refuses a dropped, added or swapped character', () => {
    for (let i = 0; i < token.length; i++) {
      expect(parseToken(token.slice(0, i) + token.slice(i + 1)).ok, `drop ${i}`).toBe(false);
      expect(parseToken(token.slice(0, i) + 'x' + token.slice(i)).ok, `insert ${i}`).toBe(false);
    }
    for (let i = 3; i < token.length - 1; i++) {
      if (token[i] === token[i + 1]) continue;
      const swapped = token.slice(0, i) + token[i + 1] + token[i] + token.slice(i + 2);
      expect(parseToken(swapped).ok, `swap ${i}`).toBe(false);
    }
  });

  it('refuses a truncated token and one with trailing text', () => {
    expect(parseToken(token.slice(0, -1)).ok).toBe(false);
    expect(parseToken(token.slice(0, 20)).ok).toBe(false);
    expect(parseToken(token + 'a').ok).toBe(false);
    expect(parseToken(token + ' ').ok).toBe(false);
    expect(parseToken(' ' + token).ok).toBe(false);
  });

  it('refuses more than 64 characters before looking further', () => {
    // A well-formed shape with a 17-character environment would be 60 long; pad past 64.
    expect(parseToken('kg_' + 'a'.repeat(62)).ok).toBe(false);
    expect(parseToken(token + 'A'.repeat(64 - token.length + 1)).ok).toBe(false);
    expect(parseToken('x'.repeat(100_000)).ok).toBe(false);
  });

  it.each([
    ['empty', ''],
    ['only the prefix', 'kg_'],
    ['another prefix', 'gh' + token.slice(2)],
    ['upper-case prefix', 'KG_' + token.slice(3)],
    ['non-base62 characters', token.slice(0, 10) + '+/' + token.slice(12)],
    ['an upper-case environment', 'kg_Prod_' + token.slice(3)],
    ['an environment starting with a digit', 'kg_1prod_' + token.slice(3)],
    ['an environment longer than 16', 'kg_abcdefghijklmnopq_' + token.slice(3)],
    ['non-ASCII', token.slice(0, 10) + 'é' + token.slice(11)],
  ])('refuses %s', (_name, t) => {
    expect(parseToken(t)).toEqual({ ok: false });
  });

  it('does not let a token of one environment pass as another: the prefix is checksummed', () => {
    const moved = 'kg_dev_' + prodToken.slice('kg_prod_'.length);
    expect(parseToken(moved).ok).toBe(false);
    const stripped = 'kg_' + prodToken.slice('kg_prod_'.length);
    expect(parseToken(stripped).ok).toBe(false);
  });
});

describe('hashToken', () => {
  it('is the lowercase hex SHA-256 of the exact token', () => {
    const t = mintToken(null);
    const h = hashToken(t);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(h).toBe(createHash('sha256').update(t, 'utf8').digest('hex'));
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('does not trim or fold case', () => {
    const t = mintToken(null);
    expect(hashToken(t + ' ')).not.toBe(hashToken(t));
    expect(hashToken(t.toUpperCase())).not.toBe(hashToken(t));
  });
});

describe('newId', () => {
  it('makes tok_ and crt_ ids of 14 base62 characters, all different', () => {
    const ids = Array.from({ length: 1_000 }, () => newId('tok'));
    for (const id of ids) expect(id).toMatch(TOKEN_ID_PATTERN);
    expect(new Set(ids).size).toBe(ids.length);
    expect(newId('crt')).toMatch(/^crt_[0-9A-Za-z]{14}$/);
  });

  it('never holds the secret: ids and tokens share no prefix', () => {
    expect(TOKEN_ID_PATTERN.test(mintToken(null))).toBe(false);
    expect(parseToken(newId('tok')).ok).toBe(false);
  });
});

describe('base62', () => {
  it.each([
    [0n, 1, '0'],
    [61n, 1, 'z'],
    [62n, 2, '10'],
    [62n ** 6n - 1n, 6, 'zzzzzz'],
    [2n ** 32n - 1n, 6, '4gfFC3'],
  ])('%s in %s digits is %s', (value, width, text) => {
    expect(base62(value, width)).toBe(text);
  });

  it('pads to the width, so a CRC32 always takes 6 characters', () => {
    expect(base62(5n, 6)).toBe('000005');
  });
});

describe('lookupToken against the index', () => {
  it('finds a token by its hex digest and compares the stored one without an early exit; the index keeps no digest bytes', () => {
    expect(sameDigest('ab'.repeat(32), 'ab'.repeat(32))).toBe(true);
    expect(sameDigest('ab'.repeat(32), `${'ab'.repeat(31)}ac`)).toBe(false);
    expect(sameDigest('0'.repeat(64), `1${'0'.repeat(63)}`)).toBe(false);
    expect(sameDigest('ab', 'abc')).toBe(false);
    const secret = mintToken(null);
    const hash = hashToken(secret);
    // An entry as the credential index makes it: the record's hex hash, no Buffer beside it.
    const entry = { kind: 'token', id: 'tok_00000000000001', token: { hash } } as unknown as Principal;
    const index = (e: Principal) => ({ tokensByHash: new Map([[hash, e]]) }) as unknown as CredentialIndex;
    expect(lookupToken(index(entry), null, secret)).toEqual({ entry });
    // An entry filed under the digest but holding another (never so in an index) admits no one.
    const other = { ...entry, token: { hash: 'f'.repeat(64) } } as unknown as Principal;
    expect(lookupToken(index(other), null, secret).error?.code).toBe('KG_ERR_TOKEN_UNKNOWN');
  });
});

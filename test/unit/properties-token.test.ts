// Properties of token parsing (issue 8): no input makes the parser or the lookup throw, and a
// one-character change anywhere in a real token — body, checksum, prefix — is caught before
// any lookup. The request path runs this on every request, with whatever a caller sends.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lookupToken, presentedToken } from '../../src/identify/lookup.js';
import { authorizationCredential, scanRequestHeaders } from '../../src/request/scan-headers.js';
import { findTokenShape, mintToken, parseToken } from '../../src/store/token-format.js';
import type { CredentialIndex } from '../../src/vocabulary/principal.js';

const RUNS = 5_000;
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const anyText = fc.oneof(fc.string({ maxLength: 100 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.string({ unit: 'grapheme', maxLength: 30 }));
/** Text that looks close to a token: the prefix, environments, base62 runs of near-right length. */
const nearToken = fc
  .tuple(fc.constantFrom('kg_', 'KG_', 'kg', 'kg__', ''), fc.option(fc.stringMatching(/^[a-z][a-z0-9]{0,17}_$/), { nil: '' }), fc.string({ unit: fc.constantFrom(...B62), minLength: 30, maxLength: 45 }))
  .map(([p, e, b]) => p + e + b);

const emptyIndex = { tokensByHash: new Map(), byId: new Map() } as unknown as CredentialIndex;

describe('token parsing, for any input', () => {
  it('never throws; the lookup of anything unknown is a 401, never a crash', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, nearToken), fc.constantFrom(null, 'prod'), (text, env) => {
        const parsed = parseToken(text);
        expect(typeof parsed.ok).toBe('boolean');
        const found = lookupToken(emptyIndex, env, text);
        expect(found.entry).toBeUndefined();
        expect(found.error?.status).toBe(401);
        findTokenShape(text);
        authorizationCredential(text);
        presentedToken(scanRequestHeaders(['x-api-key', text, 'authorization', text]), 'upstream');
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts every token keygate mints, with its environment', () => {
    fc.assert(
      fc.property(fc.constantFrom(null, 'prod', 'dev', 'e1', 'abcdefghijklmnop'), (env) => {
        const t = mintToken(env);
        expect(parseToken(t)).toEqual({ ok: true, environment: env });
        expect(findTokenShape(`x=${t}&y`)).toBe(t);
      }),
      { numRuns: 500 },
    );
  });

  it('catches a change of any one character, anywhere in the token', () => {
    fc.assert(
      fc.property(fc.constantFrom(null, 'prod'), fc.nat(), fc.oneof(fc.constantFrom(...B62), fc.string({ minLength: 1, maxLength: 1 }), fc.constantFrom('_', '-', ' ', '\u0000')), (env, at, c) => {
        const t = mintToken(env);
        const i = at % t.length;
        fc.pre(t[i] !== c);
        const changed = t.slice(0, i) + c + t.slice(i + 1);
        // CRC32 over everything before the checksum catches every change of up to 32 bits, and
        // an edit of the checksum or of the prefix breaks the shape or the match.
        expect(parseToken(changed).ok, `${t} → ${changed}`).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('catches a token cut short or grown by one character', () => {
    fc.assert(
      fc.property(fc.constantFrom(null, 'prod'), fc.nat(), fc.constantFrom(...B62), (env, at, c) => {
        const t = mintToken(env);
        const i = at % t.length;
        expect(parseToken(t.slice(0, i) + t.slice(i + 1)).ok).toBe(false);
        expect(parseToken(t.slice(0, i) + c + t.slice(i)).ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});

// The path keygate checks is the path it forwards, so normalization is a security boundary:
// every spelling two servers could read differently must be refused, every harmless spelling
// must come out in one canonical form. Each table row is one promise.
import { describe, expect, it } from 'vitest';
import { normalizeTarget } from '../../src/matching/normalize-path.js';

describe('normalizeTarget: accepted targets', () => {
  it.each([
    // [request target, normalized path, query]
    ['/', '/', ''],
    ['/api/v1/items', '/api/v1/items', ''],
    ['/api/items/42', '/api/items/42', ''],
    ['/a-b_c.d~e', '/a-b_c.d~e', ''],
    ["/sub-delims!$&'()+,;=:@", "/sub-delims!$&'()+,;=:@", ''],
    // The query is kept verbatim, escapes and all: it is the upstream's business.
    ['/a/b?x=%2F&y=1', '/a/b', '?x=%2F&y=1'],
    ['/a?q=%2e%2e/..&z', '/a', '?q=%2e%2e/..&z'],
    ['/?q', '/', '?q'],
    ['/a?', '/a', '?'],
    // Repeated slashes merged.
    ['//a//b', '/a/b', ''],
    ['/a///b/', '/a/b/', ''],
    ['//', '/', ''],
    // Dot segments resolved.
    ['/a/./b', '/a/b', ''],
    ['/a/../b', '/b', ''],
    ['/a/b/../c', '/a/c', ''],
    ['/a/..', '/', ''],
    ['/.', '/', ''],
    ['/./', '/', ''],
    ['/a/b/../../c', '/c', ''],
    // Dots that are not dot segments are plain names.
    ['/a/.b', '/a/.b', ''],
    ['/a/..b', '/a/..b', ''],
    ['/..a', '/..a', ''],
    ['/a/...', '/a/...', ''],
    // Trailing slash: kept when written, and when the last segment was a dot segment
    // (RFC 3986 §5.2.4: "/a/b/.." is "/a/").
    ['/a/b/', '/a/b/', ''],
    ['/a/b/.', '/a/b/', ''],
    ['/a/b/..', '/a/', ''],
    ['/a/b/../', '/a/', ''],
    // Escapes of unreserved characters are decoded, including dot segments spelled with them.
    ['/%7Euser', '/~user', ''],
    ['/%7euser', '/~user', ''],
    ['/%41%62%2D%5F%2E%30', '/Ab-_.0', ''],
    ['/%2e/', '/', ''],
    ['/a/%2E/b', '/a/b', ''],
    ['/a/%2e%2e', '/', ''],
    ['/a/b/%2e%2e/..', '/', ''],
    ['/a/.%2E/b', '/b', ''],
    // Other escapes are kept, upper-cased, and never decoded twice.
    ['/a%3ab', '/a%3Ab', ''],
    ['/a%3Ab', '/a%3Ab', ''],
    ['/a%20b', '/a%20b', ''],
    ['/caf%c3%a9', '/caf%C3%A9', ''],
    ['/a%25b', '/a%25b', ''],
    ['/a%252F', '/a%252F', ''],
    ['/a%3f', '/a%3F', ''],
  ])('%s → %s', (target, path, query) => {
    expect(normalizeTarget(target)).toEqual({ ok: true, path, query });
  });

  it('keeps an already canonical path identical (the fast path allocates nothing new)', () => {
    const r = normalizeTarget('/api/v1/items/42?x=1');
    expect(r).toEqual({ ok: true, path: '/api/v1/items/42', query: '?x=1' });
  });

  it('is idempotent: a normalized path normalizes to itself', () => {
    for (const t of ['//a/./b/../c/', '/%7e/%3a/%2e', '/a/b/%2e%2e/c', '/x/%c3%a9/../y']) {
      const once = normalizeTarget(t);
      expect(once.ok).toBe(true);
      if (!once.ok) continue;
      expect(normalizeTarget(once.path)).toEqual({ ok: true, path: once.path, query: '' });
    }
  });
});

describe('normalizeTarget: refused targets', () => {
  // [name, request target, a fragment of the reason]
  it.each([
    ['encoded slash', '/a%2Fb', 'encoded "/"'],
    ['encoded slash, lower case', '/a%2fb', 'encoded "/"'],
    ['encoded slash hiding a climb', '/a/..%2F..%2Fetc', 'encoded "/"'],
    ['encoded backslash', '/a%5Cb', 'encoded "/" or "\\"'],
    ['encoded backslash, lower case', '/a%5cb', 'encoded "/" or "\\"'],
    ['raw backslash', '/a\\b', '"\\"'],
    ['raw backslash climbing', '/a/..\\..\\b', '"\\"'],
    ['encoded NUL', '/a%00', 'NUL'],
    ['encoded NUL mid-segment', '/a%00.json', 'NUL'],
    ['raw NUL', '/a\u0000b', 'NUL'],
    ['invalid escape %G1', '/%G1', 'invalid percent-encoding'],
    ['invalid escape %1G', '/a%1G', 'invalid percent-encoding'],
    ['truncated escape %2', '/%2', 'invalid percent-encoding'],
    ['truncated escape at the end', '/a%2', 'invalid percent-encoding'],
    ['lone %', '/%', 'invalid percent-encoding'],
    ['.. above the root', '/..', 'above the root'],
    ['.. above the root, then a name', '/../etc/passwd', 'above the root'],
    ['%2e%2e above the root', '/%2e%2e', 'above the root'],
    ['%2E%2E above the root', '/%2E%2E/a', 'above the root'],
    ['.%2E above the root', '/.%2E', 'above the root'],
    ['%2e. above the root', '/%2e./x', 'above the root'],
    ['two climbs from one level', '/a/%2e%2e/%2e%2e/b', 'above the root'],
    ['three climbs from two levels', '/a/b/../../..', 'above the root'],
    ['climb after a merged //', '/a//../..', 'above the root'],
    ['fragment', '/a#frag', 'must be percent-encoded'],
    ['fragment in the query', '/a?b#c', 'query string'],
    ['non-ASCII in the path', '/café', 'must be percent-encoded'],
    ['non-ASCII in the query', '/a?q=é', 'query string'],
    ['space in the path', '/a b', 'must be percent-encoded'],
    ['space in the query', '/a?x y', 'query string'],
    ['tab', '/a\tb', 'must be percent-encoded'],
    ['DEL', '/a\u007f', 'must be percent-encoded'],
    ['absolute-form', 'http://x/y', 'absolute path'],
    ['absolute-form https', 'https://api.test/api/items', 'absolute path'],
    ['asterisk-form', '*', 'absolute path'],
    ['authority-form', 'api.test:443', 'absolute path'],
    ['empty target', '', 'absolute path'],
  ])('%s: %j', (_name, target, why) => {
    const r = normalizeTarget(target);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.why).toContain(why);
    // The reason goes into a 400 detail: it must be a sentence, not the attacker's input.
    if (target.length > 1) expect(r.why).not.toContain(target);
  });

  it('refuses every encoded "/" and "\\" spelling, whatever the case of the hex digits', () => {
    for (const esc of ['%2f', '%2F', '%5c', '%5C']) {
      expect(normalizeTarget(`/a/${esc}/b`).ok, esc).toBe(false);
      expect(normalizeTarget(`/a${esc}`).ok, esc).toBe(false);
    }
  });

  it('refuses every control character in the path', () => {
    for (let c = 0; c < 32; c++) {
      const r = normalizeTarget(`/a${String.fromCharCode(c)}b`);
      expect(r.ok, `char ${c}`).toBe(false);
    }
  });
});

// Scope rules and grants: what a credential may do. Patterns are compiled once at load and
// matched on every request, so both their meaning and their cost are part of the contract.
import { describe, expect, it } from 'vitest';
import { ADMIN_SCOPE } from '../../src/config/builtin-scopes.js';
import { ScopeCatalog } from '../../src/authorize/grants.js';
import { normalizeTarget } from '../../src/matching/normalize-path.js';
import { compileRule, ruleAllows, type CompiledRule } from '../../src/authorize/rules.js';

function rule(text: string): CompiledRule {
  const r = compileRule('test:scope', text);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

describe('compileRule: accepted rules', () => {
  it.each([
    ['GET /a', 'GET', '/a'],
    ['get /a', 'GET', '/a'],
    ['* /a/*', '*', '/a/*'],
    ['GET /a/**', 'GET', '/a/**'],
    ['POST /a/**/b', 'POST', '/a/**/b'],
    ['DELETE /api/v1/certificates/*', 'DELETE', '/api/v1/certificates/*'],
    ['GET /', 'GET', '/'],
    ['GET /a/', 'GET', '/a/'],
    ['  PATCH   /a  ', 'PATCH', '/a'],
    // Escapes in patterns take the canonical form request paths have after normalization.
    ['GET /users/%7Ebob', 'GET', '/users/~bob'],
    ['GET /a%3ab', 'GET', '/a%3Ab'],
  ])('%j → %s %s', (text, method, pattern) => {
    const r = rule(text);
    expect(r.method).toBe(method);
    expect(r.pattern).toBe(pattern);
    expect(r.scope).toBe('test:scope');
    expect(r.text).toBe(text.trim());
  });

  it('treats consecutive ** as one', () => {
    expect(rule('GET /a/**/**/b').pattern).toBe('/a/**/b');
  });

  it('has no cap on segments: the one wildcard matcher is linear in the path (matching/wildcard.ts)', () => {
    const long = rule('GET ' + '/s'.repeat(40) + '/**');
    expect(long.matches('/s'.repeat(40) + '/x')).toBe(true);
    expect(long.matches('/s'.repeat(39) + '/x')).toBe(false);
  });
});

describe('compileRule: refused rules, each with a message that says what is wrong', () => {
  it.each([
    ['no method', '/a', 'is not "METHOD /path"'],
    ['no path', 'GET', 'is not "METHOD /path"'],
    ['empty', '', 'is not "METHOD /path"'],
    ['no leading /', 'GET a/b', 'is not "METHOD /path"'],
    ['digits in the method', 'G3T /a', 'is not "METHOD /path"'],
    ['a space in the path', 'GET /a b', 'is not "METHOD /path"'],
    ['an empty segment', 'GET /a//b', 'empty path segment'],
    ['a leading empty segment', 'GET //a', 'empty path segment'],
    ['a dot segment', 'GET /a/./b', 'dot segments'],
    ['a dot-dot segment', 'GET /a/../b', 'dot segments'],
    ['a dot segment spelled %2e', 'GET /a/%2e/b', 'dot segments'],
    ['a dot-dot segment spelled %2E%2E', 'GET /a/%2E%2E', 'dot segments'],
    ['a partial * at the end', 'GET /a*', 'must be whole path segments'],
    ['a partial * at the start', 'GET /a/*b', 'must be whole path segments'],
    ['***', 'GET /a/***', 'must be whole path segments'],
    ['a query', 'GET /a?x=1', 'must be percent-encoded'],
    ['a fragment', 'GET /a#x', 'must be percent-encoded'],
    ['non-ASCII', 'GET /café', 'must be percent-encoded'],
    ['an encoded slash no request can carry', 'GET /a/%2F', 'encoded "/"'],
    ['an encoded NUL', 'GET /a%00', 'NUL'],
    ['an invalid escape', 'GET /a%zz', 'invalid percent-encoding'],
  ])('%s: %j', (_name, text, message) => {
    const r = compileRule('s', text);
    expect(typeof r).toBe('string');
    expect(r as string).toContain(message);
    // The operator must be able to find the rule from the message alone.
    expect(r as string).toContain(`rule "${text}"`);
  });
});

describe('matching', () => {
  // [rule, method, path, allowed]
  it.each([
    ['GET /a', 'GET', '/a', true],
    ['GET /a', 'GET', '/a/', false],
    ['GET /a', 'GET', '/ab', false],
    ['GET /a', 'GET', '/a/b', false],
    ['GET /a', 'GET', '/A', false],
    // * is exactly one non-empty segment.
    ['GET /a/*', 'GET', '/a/b', true],
    ['GET /a/*', 'GET', '/a/', false],
    ['GET /a/*', 'GET', '/a', false],
    ['GET /a/*', 'GET', '/a/b/c', false],
    ['GET /a/*', 'GET', '/a/b/', false],
    ['GET /a/*/c', 'GET', '/a/b/c', true],
    ['GET /a/*/c', 'GET', '/a/c', false],
    ['GET /a/*/c', 'GET', '/a/b/b/c', false],
    // A trailing ** is "/a/ and everything below", not /a itself.
    ['GET /a/**', 'GET', '/a/', true],
    ['GET /a/**', 'GET', '/a/b', true],
    ['GET /a/**', 'GET', '/a/b/c/d', true],
    ['GET /a/**', 'GET', '/a/b/', true],
    ['GET /a/**', 'GET', '/a', false],
    ['GET /a/**', 'GET', '/ab', false],
    ['GET /a/**', 'GET', '/b/a/c', false],
    ['GET /**', 'GET', '/', true],
    ['GET /**', 'GET', '/anything/at/all', true],
    // A ** inside the pattern is zero or more segments.
    ['POST /a/**/b', 'POST', '/a/b', true],
    ['POST /a/**/b', 'POST', '/a/x/b', true],
    ['POST /a/**/b', 'POST', '/a/x/y/z/b', true],
    ['POST /a/**/b', 'POST', '/a/b/b', true],
    ['POST /a/**/b', 'POST', '/a/xb', false],
    ['POST /a/**/b', 'POST', '/a/b/c', false],
    ['POST /a/**/b', 'POST', '/a', false],
    ['POST /a/**/b', 'POST', '/x/a/b', false],
    ['POST /a/**/b/**', 'POST', '/a/x/b/y', true],
    ['POST /a/**/b/**', 'POST', '/a/x/b', false],
    // The root and trailing slashes are literal.
    ['GET /', 'GET', '/', true],
    ['GET /', 'GET', '/a', false],
    ['GET /a/', 'GET', '/a/', true],
    ['GET /a/', 'GET', '/a', false],
    // Escapes: a rule written with escapes matches the normalized request path.
    ['GET /users/%7ebob', 'GET', normalized('/users/%7Ebob'), true],
    ['GET /users/%7ebob', 'GET', '/users/bob', false],
    ['GET /a%3ab', 'GET', normalized('/a%3ab'), true],
    // Methods: GET admits HEAD and nothing else; * admits any; methods are exact.
    ['GET /a', 'HEAD', '/a', true],
    ['GET /a', 'POST', '/a', false],
    ['GET /a', 'get', '/a', false],
    ['HEAD /a', 'GET', '/a', false],
    ['POST /a', 'HEAD', '/a', false],
    ['* /a', 'DELETE', '/a', true],
    ['* /a', 'PROPFIND', '/a', true],
    ['* /a', 'GET', '/b', false],
  ])('%s: %s %s → %s', (text, method, path, allowed) => {
    expect(ruleAllows(rule(text), method, path)).toBe(allowed);
  });

  it('matches exactly as an independent reference for every small pattern and path', () => {
    // Exhaustive over small alphabets: every pattern of up to 4 segments drawn from a, b, *, **
    // (with and without a trailing slash) against every path of up to 4 segments drawn from
    // a, b, c (with and without a trailing slash).
    const patterns = sequences(['a', 'b', '*', '**'], 4).flatMap((s) => [s, [...s, '']]);
    const paths = [[''], ...sequences(['a', 'b', 'c'], 4).flatMap((s) => [s, [...s, '']])];
    let checked = 0;
    for (const p of patterns) {
      const compiled = compileRule('s', 'GET /' + p.join('/'));
      if (typeof compiled === 'string') throw new Error(compiled);
      for (const s of paths) {
        const path = '/' + s.join('/');
        const want = reference(p, s);
        if (compiled.matches(path) !== want) throw new Error(`/${p.join('/')} against ${path}: expected ${want}`);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(100_000);
  });

  it('matches a long path against a pattern with many ** without backtracking blow-up', () => {
    // A backtracking matcher takes time polynomial in the segments with one more degree per
    // `**`; against this path it would not finish within the test timeout. The walk is linear.
    const r = rule('GET /a/**/x/**/y/**/z/**/w');
    const path = '/a' + '/x/y/z'.repeat(2_000);
    expect(r.matches(path)).toBe(false);
    expect(r.matches(path + '/w')).toBe(true);
  });

  it('refuses a path that is not absolute', () => {
    expect(rule('GET /**').matches('a/b')).toBe(false);
    expect(rule('GET /a/*').matches('')).toBe(false);
  });
});

describe('ScopeCatalog', () => {
  const scopes = {
    'items:read': ['GET /api/items', 'GET /api/items/**'],
    'items:write': ['POST /api/items', 'PUT /api/items/*', 'DELETE /api/items/*'],
    'reports:read': ['GET /api/reports/*'],
  };

  function catalog(): ScopeCatalog {
    const { catalog: c, problems } = ScopeCatalog.compile(scopes);
    expect(problems).toEqual([]);
    return c;
  }

  it('denies everything to an empty scope set', () => {
    const g = catalog().grant([]);
    expect(g.scopes).toEqual([]);
    expect(g.header).toBe('');
    expect(g.admin).toBe(false);
    for (const [m, p] of [['GET', '/api/items'], ['GET', '/'], ['POST', '/api/items'], ['GET', '/api/reports/1']]) expect(g.allows(m!, p!)).toBeUndefined();
  });

  it('denies everything to a set of only unknown scopes', () => {
    const g = catalog().grant(['no:such', 'other:unknown']);
    expect(g.scopes).toEqual([]);
    expect(g.allows('GET', '/api/items')).toBeUndefined();
  });

  it('allows the union of its scopes and nothing else', () => {
    const g = catalog().grant(['items:read', 'reports:read']);
    expect(g.allows('GET', '/api/items')?.scope).toBe('items:read');
    expect(g.allows('GET', '/api/items/1/history')?.text).toBe('GET /api/items/**');
    expect(g.allows('HEAD', '/api/items/1')?.scope).toBe('items:read');
    expect(g.allows('GET', '/api/reports/7')?.scope).toBe('reports:read');
    // The rejected twins: another scope's method, another path.
    expect(g.allows('POST', '/api/items')).toBeUndefined();
    expect(g.allows('DELETE', '/api/items/1')).toBeUndefined();
    expect(g.allows('GET', '/api/reports/7/raw')).toBeUndefined();
    expect(g.allows('GET', '/api/other')).toBeUndefined();
  });

  it('shares one grant between identical scope sets, whatever their order or repeats', () => {
    const c = catalog();
    const a = c.grant(['reports:read', 'items:read']);
    const b = c.grant(['items:read', 'reports:read', 'items:read']);
    expect(b).toBe(a);
    expect(c.grant(['items:read'])).not.toBe(a);
  });

  it('builds the x-keygate-scopes header once, sorted and comma-separated, without unknown scopes', () => {
    const g = catalog().grant(['reports:read', 'items:write', 'unknown:scope', 'items:read']);
    expect(g.scopes).toEqual(['items:read', 'items:write', 'reports:read']);
    expect(g.header).toBe('items:read,items:write,reports:read');
  });

  it('sets the admin flag for keygate:admin only', () => {
    const c = catalog();
    const admin = c.grant([ADMIN_SCOPE]);
    expect(admin.admin).toBe(true);
    expect(admin.scopes).toEqual([ADMIN_SCOPE]);
    expect(c.grant(['items:read']).admin).toBe(false);
    expect(c.grant(['items:read', ADMIN_SCOPE]).admin).toBe(true);
  });

  it('gives keygate:admin no rule on the public listener', () => {
    const g = catalog().grant([ADMIN_SCOPE]);
    for (const [m, p] of [['GET', '/'], ['GET', '/api/items'], ['POST', '/admin']]) expect(g.allows(m!, p!)).toBeUndefined();
  });

  it('refuses to redefine a built-in scope', () => {
    const { catalog: c, problems } = ScopeCatalog.compile({ ...scopes, [ADMIN_SCOPE]: ['GET /**'] });
    expect(problems).toEqual([[ADMIN_SCOPE, -1, `scope "${ADMIN_SCOPE}" is built in and cannot be redefined`]]);
    // The redefinition must not have opened anything.
    expect(c.grant([ADMIN_SCOPE]).allows('GET', '/anything')).toBeUndefined();
  });

  it('reports each bad rule with its scope and index, and keeps compiling the rest', () => {
    const { catalog: c, problems } = ScopeCatalog.compile({ ok: ['GET /ok'], bad: ['GET /fine', 'GET /a*', 'nope'] });
    expect(problems.map(([s, i]) => [s, i])).toEqual([['bad', 1], ['bad', 2]]);
    expect(problems[0]![2]).toContain('must be whole path segments');
    expect(c.grant(['ok']).allows('GET', '/ok')).toBeDefined();
  });

  it('says which scopes would allow a request (the 403 detail)', () => {
    const c = catalog();
    expect(c.scopesAllowing('GET', '/api/items/3')).toEqual(['items:read']);
    expect(c.scopesAllowing('PUT', '/api/items/3')).toEqual(['items:write']);
    expect(c.scopesAllowing('HEAD', '/api/reports/1')).toEqual(['reports:read']);
    expect(c.scopesAllowing('GET', '/nowhere')).toEqual([]);
    expect(c.scopesAllowing('PATCH', '/api/items/3')).toEqual([]);
  });

  it('knows its scopes and the built-in ones', () => {
    const c = catalog();
    expect(c.has('items:read')).toBe(true);
    expect(c.has(ADMIN_SCOPE)).toBe(true);
    expect(c.has('items:raed')).toBe(false);
    expect(c.names.sort()).toEqual(Object.keys(scopes).sort());
  });
});

function normalized(target: string): string {
  const r = normalizeTarget(target);
  if (!r.ok) throw new Error(r.why);
  return r.path;
}

/** Every sequence of 1..max items drawn from `alphabet`. */
function sequences(alphabet: string[], max: number): string[][] {
  let level: string[][] = [[]];
  const out: string[][] = [];
  for (let n = 1; n <= max; n++) {
    level = level.flatMap((s) => alphabet.map((a) => [...s, a]));
    out.push(...level);
  }
  return out;
}

/**
 * The documented meaning of a pattern, by plain recursion over segments (slow, obviously
 * right): `*` one non-empty segment; a trailing `**` one or more segments of anything (so
 * `/a/**` matches `/a/` but not `/a`); any other `**` zero or more non-empty segments; anything
 * else itself.
 */
function reference(pattern: string[], path: string[], i = 0, j = 0): boolean {
  if (i === pattern.length) return j === path.length;
  const p = pattern[i]!;
  if (p === '**' && i === pattern.length - 1) return j < path.length;
  if (p === '**') return reference(pattern, path, i + 1, j) || (j < path.length && path[j] !== '' && reference(pattern, path, i, j + 1));
  if (j >= path.length) return false;
  if (p === '*') return path[j] !== '' && reference(pattern, path, i + 1, j + 1);
  return path[j] === p && reference(pattern, path, i + 1, j + 1);
}

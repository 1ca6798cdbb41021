// Properties of path normalization (issue 8), over thousands of generated targets built from
// the pieces attackers combine: dot segments in every spelling, ";params", encoded "/" "\" NUL
// and ".", repeated slashes, characters RFC 3986 wants encoded, invalid escapes. The table
// tests in normalize-path.test.ts pin individual answers; these pin the promises every answer
// keeps: normalizing twice is normalizing once, a normalized path is never ambiguous, and the
// target stage routes and forwards the very path it normalized.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeTarget } from '../../src/matching/normalize-path.js';
import { targetStage } from '../../src/request/front-stages.js';
import { matchRoute, routeInfo } from '../../src/request/routes.js';
import { configSchema } from '../../src/config/schema.js';
import type { KeygateError } from '../../src/errors/keygate-error.js';
import type { RequestContext } from '../../src/vocabulary/context.js';

const RUNS = 5_000;

/** Pieces of a path segment, benign and hostile. */
const piece = fc.oneof(
  fc.constantFrom('a', 'b', 'api', 'items', 'admin', 'healthz', '1', '-', '_', '~', 'x.y', '..x', 'a..'),
  fc.constantFrom('.', '..', '.;', '..;', ';', ';v=1', ';jsessionid=x', '%2e', '%2E', '%2e%2e', '.%2E', '%3B', '%3b'),
  fc.constantFrom('%2f', '%2F', '%5c', '%5C', '%00', '%41', '%7e', '%25', '%zz', '%2', '%'),
  fc.constantFrom('\\', ' ', '\t', '<', '>', '"', '{', '}', '|', '^', '`', '[', ']', '#', '\u0001', '\u007f', 'é', "!$&'()*+,=:@"),
);
const segment = fc.array(piece, { minLength: 0, maxLength: 4 }).map((p) => p.join(''));
const path = fc.array(segment, { minLength: 0, maxLength: 7 }).map((s) => '/' + s.join('/'));
const query = fc.oneof(fc.constant(''), fc.constantFrom('?a=1', '?q=%2e%2e/..', '?', '?x=y&z'));
const target = fc.tuple(path, fc.option(fc.constantFrom('/', '//'), { nil: '' }), query).map(([p, tail, q]) => p + tail + q);

/** What makes a path ambiguous: anything a second reader could resolve to another path. */
function ambiguity(p: string): string | undefined {
  if (!p.startsWith('/')) return 'not absolute';
  if (p.includes('//')) return 'an empty segment';
  for (const seg of p.split('/').slice(1)) {
    if (seg === '.' || seg === '..') return `dot segment "${seg}"`;
    if (/^\.\.?(;|%3B)/i.test(seg)) return `dot segment with parameters "${seg}"`;
  }
  if (/%(2f|5c|00)/i.test(p)) return 'an encoded "/", "\\" or NUL';
  if (/%(?![0-9A-F]{2})/.test(p)) return 'an invalid or lower-case escape';
  if (/%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/.test(p)) return 'an encoded unreserved character';
  if (/[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/.test(p)) return 'a character RFC 3986 does not allow raw';
  return undefined;
}

describe('normalizeTarget, for any target', () => {
  it('never throws, and either refuses with a reason or gives a path', () => {
    fc.assert(
      fc.property(fc.oneof(target, fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 40 })), (t) => {
        const r = normalizeTarget(t);
        if (r.ok) expect(typeof r.path).toBe('string');
        else expect(r.why.length).toBeGreaterThan(0);
      }),
      { numRuns: RUNS },
    );
  });

  it('is idempotent: the normalized target normalizes to itself', () => {
    fc.assert(
      fc.property(target, (t) => {
        const once = normalizeTarget(t);
        if (!once.ok) return;
        const twice = normalizeTarget(once.path + once.query);
        expect(twice).toEqual(once);
      }),
      { numRuns: RUNS },
    );
  });

  it('(the generator and the checker can fail: many targets are accepted, and the checker sees ambiguity)', () => {
    const sample = fc.sample(target, { numRuns: 2_000, seed: 1 });
    const accepted = sample.filter((t) => normalizeTarget(t).ok).length;
    expect(accepted).toBeGreaterThan(200);
    expect(accepted).toBeLessThan(1_900);
    for (const bad of ['/healthz/..;/api', '/a//b', '/a/./b', '/a/%2F', '/a/%2e', '/a b', '/a/%4a', '/a|b']) expect(ambiguity(bad), bad).toBeDefined();
    expect(ambiguity('/api/items/1;v=2')).toBeUndefined();
  });

  it('never gives an ambiguous path', () => {
    fc.assert(
      fc.property(target, (t) => {
        const r = normalizeTarget(t);
        if (r.ok) expect(ambiguity(r.path), `${JSON.stringify(t)} → ${JSON.stringify(r.path)}`).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses every target whose dot segment carries parameters, in any spelling', () => {
    const dotParams = fc.tuple(path, fc.constantFrom('..;', '.;', '%2e%2e;', '.%2E;', '%2e;', '..%3B', '.%3b'), fc.constantFrom('', 'x', 'jsessionid=1'), path).map(([a, d, p, b]) => `${a}/${d}${p}${b}`);
    fc.assert(
      fc.property(dotParams, (t) => {
        expect(normalizeTarget(t).ok, t).toBe(false);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('the target stage, for any target', () => {
  const cfg = configSchema.parse({
    listen: { tls: { cert: 'c', key: 'k' } },
    routes: [
      { pathPrefix: '/healthz', upstream: 'http://127.0.0.1:1', public: true },
      { pathPrefix: '/api', upstream: 'http://127.0.0.1:1' },
      { pathPrefix: '/', upstream: 'http://127.0.0.1:1' },
    ],
  });
  const routes = cfg.routes.map((r, i) => routeInfo(i, r));
  const stage = targetStage(routes);
  const ctxFor = (t: string) => ({ x: { target: t }, headers: { overrides: undefined, forward: [] }, path: '', query: '' }) as unknown as RequestContext;

  it('routes by the path it normalized, and that path is what goes upstream (path + query)', () => {
    fc.assert(
      fc.property(target, (t) => {
        const ctx = ctxFor(t);
        const verdict = stage.run(ctx) as KeygateError | undefined; // the target stage decides at once
        const n = normalizeTarget(t);
        if (!n.ok) {
          expect(verdict?.code).toBe('KG_ERR_PATH_INVALID');
          return;
        }
        expect(verdict).toBeUndefined();
        expect(ctx.path).toBe(n.path);
        expect(ctx.route).toBe(matchRoute(routes, n.path));
        // The forwarder sends ctx.path + ctx.query: read again, it is the same path.
        const forwarded = normalizeTarget(ctx.path + ctx.query);
        expect(forwarded.ok && forwarded.path).toBe(ctx.path);
      }),
      { numRuns: RUNS },
    );
  });
});

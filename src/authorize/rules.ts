// Scope rules: `METHOD /path-pattern`, compiled once at load with the one wildcard syntax of
// matching/wildcard.ts: `*` is exactly one path segment, `**` any number (`/a/**` matches `/a/`
// and everything below it, not `/a` itself; `/a/**/b` matches `/a/b`). A GET rule also admits
// HEAD, which is GET without the body. `*` as the method admits any.
//
// Literal segments are put in the canonical form matching/normalize-path.ts gives request
// paths (unreserved escapes decoded, other escapes upper-cased), so that a rule written
// `/%7Ebob` or `/a%3ab` matches the path it names instead of silently never matching; an
// escape no request path can carry (%2F, %5C, %00) is refused.
import { normalizeTarget } from '../matching/normalize-path.js';
import { compileWildcard, wildcardProblem } from '../matching/wildcard.js';
import type { Rule } from '../vocabulary/principal.js';

export interface CompiledRule extends Rule {
  /** Upper-case method, or '*' for any. */
  readonly method: string;
  /** The path pattern in canonical form. */
  readonly pattern: string;
  /** True when the normalized path matches the pattern. */
  matches(path: string): boolean;
}

const RULE = /^([A-Za-z]+|\*)\s+(\/\S*)$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]+$/;

export function compileRule(scope: string, text: string): CompiledRule | string {
  const m = RULE.exec(text.trim());
  if (!m) return `rule "${text}" is not "METHOD /path" (e.g. "GET /api/v1/items/*")`;
  const method = m[1]!.toUpperCase();
  const segments = m[2]!.split('/').slice(1);
  if (wildcardProblem(m[2]!)) return `rule "${text}": "*" and "**" must be whole path segments`;
  const canonical: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '*' || seg === '**') {
      // `/a/**/**/b` says no more than `/a/**/b`.
      if (!(seg === '**' && canonical[canonical.length - 1] === '**')) canonical.push(seg);
      continue;
    }
    if (seg === '') {
      if (i === segments.length - 1) {
        canonical.push('');
        continue;
      }
      return `rule "${text}": empty path segment ("//")`;
    }
    if (seg === '.' || seg === '..') return `rule "${text}": dot segments are not allowed in patterns`;
    if (!LITERAL_SEGMENT.test(seg)) return `rule "${text}": segment "${seg}" has a character that must be percent-encoded`;
    const c = canonicalSegment(seg);
    if (c === undefined) return `rule "${text}": dot segments are not allowed in patterns`;
    if (typeof c !== 'string') return `rule "${text}": segment "${seg}": ${c.why}`;
    canonical.push(c);
  }
  const pattern = '/' + canonical.join('/');
  const matcher = compileWildcard(pattern, { trailingSlash: true });
  return { scope, text: text.trim(), method, pattern, matches: matcher.matches };
}

/**
 * The segment as normalize-path.ts would leave it in a request path; undefined for a dot
 * segment spelled with escapes (`%2e`), `{ why }` for an escape no request path can carry.
 * Normalized under a parent so that `..` reads as a dot segment, not as a climb above the root.
 */
function canonicalSegment(seg: string): string | undefined | { why: string } {
  const r = normalizeTarget('/x/' + seg);
  if (!r.ok) return { why: r.why };
  return r.path.startsWith('/x/') && r.path.length > 3 ? r.path.slice(3) : undefined;
}

export function ruleAllows(rule: CompiledRule, method: string, path: string): boolean {
  return (rule.method === method || rule.method === '*' || (method === 'HEAD' && rule.method === 'GET')) && rule.matches(path);
}

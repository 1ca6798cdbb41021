// Scope rules: `METHOD /path-pattern`, compiled once at load. In patterns `*` is exactly one
// path segment and `**` any number of segments (`/a/**` matches `/a/` and everything below it,
// not `/a` itself; `/a/**/b` matches `/a/b`). A GET rule also admits HEAD, which is GET
// without the body. `*` as the method admits any.
//
// Literal segments are put in the canonical form normalize-path.ts gives request paths
// (unreserved escapes decoded, other escapes upper-cased), so that a rule written `/%7Ebob` or
// `/a%3ab` matches the path it names instead of silently never matching; an escape no request
// path can carry (%2F, %5C, %00) is refused.
//
// Matching walks the path's segments once, carrying the set of pattern positions reached so
// far (a small NFA in a bit mask). Its cost is linear in the path length whatever the pattern.
// A backtracking regular expression is not: with several `**` it was polynomial in the number
// of segments of a path the caller chooses (a 6 KB path took seconds against `/a/**/**/**/b`).
import { normalizeTarget } from './normalize-path.js';

export interface CompiledRule {
  scope: string;
  /** The rule as written, for audit, 403 details and `keygate explain`. */
  text: string;
  /** Upper-case method, or '*' for any. */
  method: string;
  /** The path pattern in canonical form. */
  pattern: string;
  /** True when the normalized path matches the pattern. */
  matches(path: string): boolean;
}

const RULE = /^([A-Za-z]+|\*)\s+(\/\S*)$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]+$/;
/** Positions live in the bits of a 32-bit integer; real patterns are far shorter. */
const MAX_SEGMENTS = 24;

const enum Kind {
  /** The segment equals `text` (`''` only as the last segment: a trailing slash). */
  Literal,
  /** `*`: one non-empty segment. */
  One,
  /** First half of a trailing `**`: one segment, possibly empty (`/a/**` matches `/a/`). */
  AnyOne,
  /** A `**` inside the pattern: zero or more non-empty segments. */
  Many,
  /** Second half of a trailing `**`: zero or more segments of anything. */
  AnyMany,
}

interface Token {
  kind: Kind;
  text: string;
}

export function compileRule(scope: string, text: string): CompiledRule | string {
  const m = RULE.exec(text.trim());
  if (!m) return `rule "${text}" is not "METHOD /path" (e.g. "GET /api/v1/items/*")`;
  const method = m[1]!.toUpperCase();
  const segments = m[2]!.split('/').slice(1);
  if (segments.length > MAX_SEGMENTS) return `rule "${text}": a pattern has at most ${MAX_SEGMENTS} segments`;
  const tokens: Token[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '**') {
      if (last) tokens.push({ kind: Kind.AnyOne, text: '' }, { kind: Kind.AnyMany, text: '' });
      // `/a/**/**/b` means no more than `/a/**/b`.
      else if (tokens[tokens.length - 1]?.kind !== Kind.Many) tokens.push({ kind: Kind.Many, text: '' });
      continue;
    }
    if (seg === '*') {
      tokens.push({ kind: Kind.One, text: '' });
      continue;
    }
    if (seg === '') {
      if (last) {
        tokens.push({ kind: Kind.Literal, text: '' });
        continue;
      }
      return `rule "${text}": empty path segment ("//")`;
    }
    if (seg === '.' || seg === '..') return `rule "${text}": dot segments are not allowed in patterns`;
    if (seg.includes('*')) return `rule "${text}": "*" and "**" must be whole path segments`;
    if (!LITERAL_SEGMENT.test(seg)) return `rule "${text}": segment "${seg}" has a character that must be percent-encoded`;
    const canonical = canonicalSegment(seg);
    if (canonical === undefined) return `rule "${text}": dot segments are not allowed in patterns`;
    if (typeof canonical !== 'string') return `rule "${text}": segment "${seg}": ${canonical.why}`;
    tokens.push({ kind: Kind.Literal, text: canonical });
  }
  const pattern = '/' + tokens.map((t) => (t.kind === Kind.Literal ? t.text : t.kind === Kind.One ? '*' : t.kind === Kind.AnyMany ? null : '**')).filter((s) => s !== null).join('/');
  const exact = tokens.every((t) => t.kind === Kind.Literal) ? pattern : undefined;
  return { scope, text: text.trim(), method, pattern, matches: exact !== undefined ? (path) => path === exact : (path) => matchTokens(tokens, path) };
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

function matchTokens(tokens: readonly Token[], path: string): boolean {
  if (path.charCodeAt(0) !== 47) return false;
  const n = tokens.length;
  let state = closure(tokens, 1);
  let start = 1;
  for (;;) {
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    let next = 0;
    for (let i = 0; i < n; i++) {
      if ((state & (1 << i)) === 0) continue;
      const t = tokens[i]!;
      switch (t.kind) {
        case Kind.Literal:
          if (end - start === t.text.length && path.startsWith(t.text, start)) next |= 1 << (i + 1);
          break;
        case Kind.One:
          if (end > start) next |= 1 << (i + 1);
          break;
        case Kind.AnyOne:
          next |= 1 << (i + 1);
          break;
        case Kind.Many:
          if (end > start) next |= 1 << i;
          break;
        case Kind.AnyMany:
          next |= 1 << i;
          break;
      }
    }
    state = closure(tokens, next);
    if (state === 0) return false;
    if (end === path.length) return (state & (1 << n)) !== 0;
    start = end + 1;
  }
}

/** Adds the positions reachable without consuming a segment: past any `**` that matches none. */
function closure(tokens: readonly Token[], state: number): number {
  let s = state;
  for (let i = 0; i < tokens.length; i++) {
    const k = tokens[i]!.kind;
    if ((s & (1 << i)) !== 0 && (k === Kind.Many || k === Kind.AnyMany)) s |= 1 << (i + 1);
  }
  return s;
}

export function ruleAllows(rule: CompiledRule, method: string, path: string): boolean {
  return (rule.method === method || rule.method === '*' || (method === 'HEAD' && rule.method === 'GET')) && rule.matches(path);
}

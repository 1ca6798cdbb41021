// Scope rules: `METHOD /path-pattern`, compiled once at load into anchored regular
// expressions. In patterns `*` is exactly one path segment and `**` any number of segments
// (`/a/**` matches `/a/` and everything below it, not `/a` itself; `/a/**/b` matches `/a/b`).
// A GET rule also admits HEAD, which is GET without the body. `*` as the method admits any.

export interface CompiledRule {
  scope: string;
  /** The rule as written, for audit, 403 details and `keygate explain`. */
  text: string;
  /** Upper-case method, or '*' for any. */
  method: string;
  regex: RegExp;
}

const RULE = /^([A-Za-z]+|\*)\s+(\/\S*)$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]+$/;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function compileRule(scope: string, text: string): CompiledRule | string {
  const m = RULE.exec(text.trim());
  if (!m) return `rule "${text}" is not "METHOD /path" (e.g. "GET /api/v1/items/*")`;
  const method = m[1]!.toUpperCase();
  const pattern = m[2]!;
  const segments = pattern.split('/').slice(1);
  let re = '^';
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '**') {
      re += last ? '/.*' : '(?:/[^/]+)*';
      continue;
    }
    if (seg === '*') {
      re += '/[^/]+';
      continue;
    }
    if (seg === '') {
      if (last) {
        re += '/';
        continue;
      }
      return `rule "${text}": empty path segment ("//")`;
    }
    if (seg === '.' || seg === '..') return `rule "${text}": dot segments are not allowed in patterns`;
    if (seg.includes('*')) return `rule "${text}": "*" and "**" must be whole path segments`;
    if (!LITERAL_SEGMENT.test(seg)) return `rule "${text}": segment "${seg}" has a character that must be percent-encoded`;
    re += '/' + escape(seg);
  }
  if (segments.length === 0) re += '/';
  return { scope, text: text.trim(), method, regex: new RegExp(re + '$') };
}

export function ruleAllows(rule: CompiledRule, method: string, path: string): boolean {
  return (rule.method === method || rule.method === '*' || (method === 'HEAD' && rule.method === 'GET')) && rule.regex.test(path);
}

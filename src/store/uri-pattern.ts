// URI SAN patterns of certificate bindings (SPIFFE IDs and the like), with the same wildcard
// rules as scope paths so operators learn one syntax: `*` is exactly one segment, `**` any
// number of segments, and both must stand alone between slashes. A wildcard never matches an
// empty, `.` or `..` segment: a certificate that names `spiffe://td/ns/prod/../admin` is not
// a workload under `spiffe://td/ns/prod/**`, whatever string prefix it shares.
// Checked when a binding is written (cert-operations.ts, store/check.ts) and compiled once per
// credential index (identify/credential-index.ts).

const SEGMENT = '(?!\\.\\.?(?:/|$))[^/]+';
const MAX_SEGMENTS = 32;
const MAX_GLOBSTARS = 2;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Why `pattern` is not a usable URI binding pattern, or undefined when it is. */
export function uriPatternProblem(pattern: string): string | undefined {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(pattern)) return `"${pattern}" is not a URI (e.g. spiffe://trust.domain/ns/prod/sa/deployer)`;
  if (/[\s\u0000-\u001f\u007f]/.test(pattern)) return 'a URI has no spaces or control characters';
  const segments = pattern.split('/');
  if (segments[0]!.includes('*')) return `"${pattern}": wildcards stand for segments between slashes, not for the scheme or a URN`;
  for (const seg of segments) {
    if (seg.includes('*') && seg !== '*' && seg !== '**') return `"${pattern}": "*" and "**" must be whole segments (between slashes)`;
  }
  // Each "**" multiplies the work a backtracking match may do on a long URI; two are plenty for
  // any trust-domain layout, and "**/**" says no more than "**".
  if (segments.length > MAX_SEGMENTS) return `"${pattern}": a pattern has at most ${MAX_SEGMENTS} segments`;
  if (segments.filter((s) => s === '**').length > MAX_GLOBSTARS) return `"${pattern}": at most ${MAX_GLOBSTARS} "**" in one pattern`;
  if (segments.some((s, i) => s === '**' && segments[i + 1] === '**')) return `"${pattern}": "**/**" is the same as "**"; write it once`;
  return undefined;
}

/**
 * Compiles a pattern into an anchored expression. An invalid pattern (only a hand-edited
 * store can hold one; `keygate check` reports it) compiles to an expression that matches
 * nothing, so a mistake can only refuse a caller, never admit one.
 */
export function compileUriPattern(pattern: string): RegExp {
  if (uriPatternProblem(pattern) !== undefined) return /(?!)/;
  const segments = pattern.split('/');
  let re = '^' + escape(segments[0]!);
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '**') re += last ? `(?:/${SEGMENT})+` : `(?:/${SEGMENT})*`;
    else if (seg === '*') re += `/${SEGMENT}`;
    else re += '/' + escape(seg);
  }
  return new RegExp(re + '$');
}

/**
 * Order of patterns when several match one certificate: the most specific wins — the one with
 * more literal (non-wildcard) characters; on a tie the one without `**`; then the binding
 * created first. A negative result puts `a` first.
 */
export function compareUriPatterns(a: { value: string; createdAt: string }, b: { value: string; createdAt: string }): number {
  const literal = (p: string) => p.replace(/\*/g, '').length;
  const globs = (p: string) => (p.match(/\*\*/g) ?? []).length;
  return literal(b.value) - literal(a.value) || globs(a.value) - globs(b.value) || a.createdAt.localeCompare(b.createdAt);
}

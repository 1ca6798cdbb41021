// URI SAN patterns of certificate bindings (SPIFFE IDs and the like) in the one wildcard syntax
// (matching/wildcard.ts), so operators learn one: `spiffe://td/ns/*/sa/deployer`,
// `spiffe://td/ns/prod/**`. Checked when a binding is written (store/cert-operations.ts,
// store/check.ts) and compiled once per credential index.
import { compileWildcard, wildcardProblem, type Wildcard } from './wildcard.js';

/** Why `pattern` is not a usable URI binding pattern, or undefined when it is. */
export function uriPatternProblem(pattern: string): string | undefined {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(pattern)) return `"${pattern}" is not a URI (e.g. spiffe://trust.domain/ns/prod/sa/deployer)`;
  if (/[\s\u0000-\u001f\u007f]/.test(pattern)) return 'a URI has no spaces or control characters';
  if (pattern.split('/')[0]!.includes('*')) return `"${pattern}": wildcards stand for segments between slashes, not for the scheme or a URN`;
  const problem = wildcardProblem(pattern);
  return problem ? `"${pattern}": ${problem}` : undefined;
}

const NOTHING: Wildcard = { pattern: '', exact: false, matches: () => false };

/**
 * An invalid pattern (only a hand-edited store can hold one; `keygate check` reports it)
 * compiles to a matcher that matches nothing, so a mistake can only refuse a caller.
 */
export function compileUriPattern(pattern: string): Wildcard {
  return uriPatternProblem(pattern) === undefined ? compileWildcard(pattern) : NOTHING;
}

// The one wildcard syntax keygate documents, for scope paths and for URI SAN bindings (SPIFFE
// IDs): a pattern is split at "/" into segments; `*` is exactly one segment, `**` any number of
// segments — zero or more inside a pattern, one or more at its end — and both stand alone
// between slashes. A wildcard never matches an empty, `.` or `..` segment, so
// `spiffe://td/ns/prod/../admin` is not a workload under `spiffe://td/ns/prod/**`. The one
// exception is the trailing slash of a request path, which a trailing `**` may absorb
// (`/a/**` matches `/a/`), selected by `trailingSlash`.
//
// Matching walks the subject's segments once, carrying the set of pattern positions reached
// so far (a small NFA). Its cost is linear in the subject's length for a given pattern,
// whatever the pattern: a backtracking regular expression with several `**` is polynomial in
// the number of segments a caller chooses (a 6 KB path took seconds), which is why no pattern
// here becomes a RegExp and no cap on the number of `**` is needed.

const enum Kind {
  /** The segment equals `text`. */
  Literal,
  /** `*`: one wildcard segment. */
  One,
  /** `**` inside the pattern: zero or more wildcard segments. */
  Many,
  /** `**` at the end: one or more wildcard segments (the last may be a trailing slash). */
  Rest,
}

interface Token {
  readonly kind: Kind;
  readonly text: string;
}

export interface WildcardOptions {
  /** A trailing empty segment of the subject (a path's trailing slash) may be taken by a trailing `**`. */
  readonly trailingSlash?: boolean;
}

export interface Wildcard {
  /** The pattern as compiled. */
  readonly pattern: string;
  /** True when the pattern has no `*` at all (an exact comparison). */
  readonly exact: boolean;
  matches(subject: string): boolean;
}

/** `*` and `**` must be whole segments; undefined when they are. */
export function wildcardProblem(pattern: string): string | undefined {
  for (const seg of pattern.split('/')) {
    if (seg.includes('*') && seg !== '*' && seg !== '**') return `"*" and "**" must be whole segments (between slashes)`;
  }
  return undefined;
}

function isWild(subject: string, start: number, end: number): boolean {
  const len = end - start;
  if (len === 0) return false;
  if (subject.charCodeAt(start) !== 46) return true; // not "."
  return !(len === 1 || (len === 2 && subject.charCodeAt(start + 1) === 46));
}

/**
 * Compiles `segments` (the pattern split at "/", already canonical for its family) into a
 * matcher. `**` twice in a row means no more than once. Call wildcardProblem first: a segment
 * that mixes `*` with other characters is taken literally here.
 */
export function compileWildcard(pattern: string, opts: WildcardOptions = {}): Wildcard {
  const segments = pattern.split('/');
  const tokens: Token[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '**') {
      if (i === segments.length - 1) tokens.push({ kind: Kind.Rest, text: '' });
      else if (tokens[tokens.length - 1]?.kind !== Kind.Many) tokens.push({ kind: Kind.Many, text: '' });
    } else if (seg === '*') tokens.push({ kind: Kind.One, text: '' });
    else tokens.push({ kind: Kind.Literal, text: seg });
  }
  // A trailing "**" right after an inner one: the inner one adds nothing.
  if (tokens.length >= 2 && tokens[tokens.length - 1]!.kind === Kind.Rest && tokens[tokens.length - 2]!.kind === Kind.Many) tokens.splice(tokens.length - 2, 1);
  const exact = tokens.every((t) => t.kind === Kind.Literal);
  if (exact) return { pattern, exact, matches: (s) => s === pattern };
  const n = tokens.length;
  const trailingSlash = opts.trailingSlash === true;
  // Scratch state sets, reused: matching is synchronous, so one pair per pattern is enough.
  let cur = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);

  /** Positions reachable without consuming a segment: past any inner `**` that takes none. */
  const close = (set: Uint8Array) => {
    for (let i = 0; i < n; i++) if (set[i] === 1 && tokens[i]!.kind === Kind.Many) set[i + 1] = 1;
  };

  return {
    pattern,
    exact,
    matches(subject: string): boolean {
      cur.fill(0);
      cur[0] = 1;
      close(cur);
      let start = 0;
      for (;;) {
        let end = subject.indexOf('/', start);
        const last = end === -1;
        if (last) end = subject.length;
        const wild = isWild(subject, start, end);
        next.fill(0);
        let any = false;
        for (let i = 0; i < n; i++) {
          if (cur[i] !== 1) continue;
          const t = tokens[i]!;
          switch (t.kind) {
            case Kind.Literal:
              if (end - start === t.text.length && subject.startsWith(t.text, start)) next[i + 1] = 1;
              break;
            case Kind.One:
              if (wild) next[i + 1] = 1;
              break;
            case Kind.Many:
              if (wild) next[i] = 1;
              break;
            case Kind.Rest:
              // One or more: having taken this segment, the pattern may end (i + 1) or go on.
              if (wild || (trailingSlash && last && start === end)) {
                next[i] = 1;
                next[i + 1] = 1;
              }
              break;
          }
        }
        close(next);
        for (let i = 0; i <= n; i++) if (next[i] === 1) any = true;
        const swap = cur;
        cur = next;
        next = swap;
        if (!any) return false;
        if (last) return cur[n] === 1;
        start = end + 1;
      }
    },
  };
}

/**
 * Order of patterns when several match one subject: the most specific wins — the one with more
 * literal (non-wildcard) characters; on a tie the one without `**`; then the older one. A
 * negative result puts `a` first.
 */
export function compareSpecificity(a: { value: string; createdAt: string }, b: { value: string; createdAt: string }): number {
  const literal = (p: string) => p.replace(/\*/g, '').length;
  const globs = (p: string) => (p.match(/\*\*/g) ?? []).length;
  return literal(b.value) - literal(a.value) || globs(a.value) - globs(b.value) || a.createdAt.localeCompare(b.createdAt);
}

// Request paths are normalized once (RFC 3986 §6.2.2): percent-encoded unreserved characters
// decoded, other escapes upper-cased, dot segments removed, repeated slashes merged. Anything
// that two servers could read differently is refused rather than guessed: an encoded "/" or
// "\", a raw "\", NUL, invalid percent-encoding, ".." above the root, a "." or ".." segment
// with parameters ("..;", ".;jsessionid=…": Tomcat-style servers strip the parameters and
// then resolve the dots), and every character RFC 3986 does not allow raw in a path (space,
// controls, DEL, `<>"{}|\^` and the backtick, "[" "]", non-ASCII). The path keygate checks is
// the path it forwards, so the upstream cannot be reached through a spelling that the scope
// rules did not see; normalizing a normalized path gives it back unchanged.

export type NormalizedTarget =
  | { ok: true; path: string; query: string }
  | { ok: false; why: string };

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/**
 * What RFC 3986 §3.3 allows raw in a path, besides "%" (handled apart): unreserved, sub-delims
 * (!$&'()*+,;=), ":", "@" and "/".
 */
const PATH_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") PATH_CHAR[c.charCodeAt(0)] = 1;

function isPlainPathChar(c: number): boolean {
  return c < 128 && PATH_CHAR[c] === 1;
}

/** A "." or ".." segment with parameters, raw or with the ";" encoded. */
function isDotWithParams(seg: string): boolean {
  if (seg.charCodeAt(0) !== 46) return false;
  const rest = seg.charCodeAt(1) === 46 ? seg.slice(2) : seg.slice(1);
  return rest.startsWith(';') || rest.startsWith('%3B');
}

const fail = (why: string): NormalizedTarget => ({ ok: false, why });

/** Normalizes an origin-form request target (`/path?query`). */
export function normalizeTarget(target: string): NormalizedTarget {
  if (target.length === 0 || target.charCodeAt(0) !== 47) return fail('the request target must be an absolute path');
  const q = target.indexOf('?');
  const raw = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c <= 32 || c >= 127 || c === 35) return fail('the query string contains a character that must be percent-encoded');
  }
  // Fast path: nothing to decode, no dot segment, no empty segment.
  let simple = true;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (!isPlainPathChar(c)) {
      simple = false;
      break;
    }
    if (c === 47 && i > 0 && raw.charCodeAt(i - 1) === 47) {
      simple = false;
      break;
    }
    if (c === 46 && raw.charCodeAt(i - 1) === 47) {
      simple = false;
      break;
    }
  }
  if (simple) return { ok: true, path: raw, query };

  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return fail('invalid percent-encoding in the path');
      const v = hi * 16 + lo;
      if (v === 0) return fail('the path contains an encoded NUL');
      if (v === 47 || v === 92) return fail('the path contains an encoded "/" or "\\"');
      decoded += isUnreserved(v) ? String.fromCharCode(v) : '%' + HEX[hi] + HEX[lo];
      i += 2;
      continue;
    }
    if (c === 0) return fail('the path contains NUL');
    if (c === 92) return fail('the path contains "\\"');
    if (!isPlainPathChar(c)) return fail('the path contains a character that must be percent-encoded (RFC 3986)');
    decoded += raw[i];
  }

  const segments: string[] = [];
  const parts = decoded.split('/');
  let trailingSlash = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    const last = i === parts.length - 1;
    if (seg === '' || seg === '.') {
      if (last) trailingSlash = true;
      continue;
    }
    if (seg === '..') {
      if (segments.length === 0) return fail('the path climbs above the root with ".."');
      segments.pop();
      if (last) trailingSlash = true;
      continue;
    }
    if (isDotWithParams(seg)) return fail('a "." or ".." segment carries ";" parameters');
    segments.push(seg);
    trailingSlash = false;
  }
  if (segments.length === 0) return { ok: true, path: '/', query };
  return { ok: true, path: '/' + segments.join('/') + (trailingSlash ? '/' : ''), query };
}

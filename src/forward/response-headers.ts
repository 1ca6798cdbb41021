// The upstream's answer on its way back: hop-by-hop headers removed (RFC 9110 §7.6.1), and the
// headers keygate sets itself (x-request-id, RateLimit-*, the expiry warning) given way to.

/** Response headers that must not cross the hop, plus those keygate sets itself. */
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'x-request-id', 'keygate-credential-expires']);
const RATE_LIMIT_HEADERS = new Set(['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']);

/**
 * Appends the upstream's end-to-end response headers to `out` as flat [name, value, …] pairs
 * (repeated headers such as set-cookie stay repeated), for one writeHead call. With
 * `ownRateLimit`, the upstream's RateLimit-* headers give way to keygate's. HTTP/2
 * pseudo-headers (`:status`) describe the upstream's hop and are left out too.
 */
export function appendResponseHeaders(out: string[], headers: Readonly<Record<string, string | string[] | number | undefined>>, ownRateLimit = false): string[] {
  // A single listed name ("Connection: x-hop") is hop-by-hop as much as a list of them.
  let listed: Set<string> | undefined;
  const conn = headers['connection'];
  if (conn !== undefined) listed = new Set((Array.isArray(conn) ? conn.join(',') : String(conn)).split(',').map((t) => t.trim().toLowerCase()));
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || name.charCodeAt(0) === 58 || DROP_RESPONSE.has(name) || listed?.has(name) || (ownRateLimit && RATE_LIMIT_HEADERS.has(name))) continue;
    if (typeof v === 'string') out.push(name, v);
    else if (typeof v === 'number') out.push(name, String(v));
    else for (const one of v) out.push(name, one);
  }
  return out;
}

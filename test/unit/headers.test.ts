// Strip, then set: the one pass over the client's headers decides what can reach the upstream.
// Whatever a caller could use to forge identity or confuse the hop must not survive it, in any
// spelling; what identify needs is held aside, never forwarded.
import { describe, expect, it } from 'vitest';
import { appendResponseHeaders } from '../../src/forward/response-headers.js';
import { scanRequestHeaders } from '../../src/request/scan-headers.js';

/** Flat [name, value, …] as Node's rawHeaders gives them. */
const raw = (...pairs: Array<[string, string]>): string[] => pairs.flat();

/** The forwarded headers as [name, value] pairs. */
function forwarded(headers: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < headers.length; i += 2) out.push([headers[i]!, headers[i + 1]!]);
  return out;
}

const names = (headers: string[]) => forwarded(headers).map(([n]) => n);

describe('scanRequestHeaders: what is forwarded', () => {
  it('forwards ordinary headers, lower-cased, in order, with their values untouched', () => {
    const s = scanRequestHeaders(raw(['Host', 'api.test'], ['Accept', 'application/json'], ['X-Custom', ' keep  spaces '], ['Cookie', 'a=1'], ['Cookie', 'b=2']));
    expect(forwarded(s.forward)).toEqual([
      ['host', 'api.test'],
      ['accept', 'application/json'],
      ['x-custom', ' keep  spaces '],
      ['cookie', 'a=1'],
      ['cookie', 'b=2'],
    ]);
  });

  it.each(['x-keygate-account', 'X-Keygate-Account', 'X-KEYGATE-SCOPES', 'x-keygate-credential', 'x-keygate-auth', 'x-keygate-anything-new'])('strips the forged identity header %s', (name) => {
    const s = scanRequestHeaders(raw(['accept', '*/*'], [name, 'admin'], ['x-other', '1']));
    expect(names(s.forward)).toEqual(['accept', 'x-other']);
  });

  it.each(['x-forwarded-client-cert', 'X-Forwarded-Client-Cert', 'X-FORWARDED-CLIENT-CERT'])('strips a forged %s', (name) => {
    const s = scanRequestHeaders(raw([name, 'Hash=00;Subject="CN=admin"'], ['accept', '*/*']));
    expect(names(s.forward)).toEqual(['accept']);
  });

  it('keeps headers that only look like ours', () => {
    const s = scanRequestHeaders(raw(['x-keygateway', '1'], ['keygate-account', '2'], ['x-keygate', '3']));
    expect(names(s.forward)).toEqual(['x-keygateway', 'keygate-account', 'x-keygate']);
  });

  it.each([
    ['Connection', 'keep-alive'],
    ['Keep-Alive', 'timeout=5'],
    ['Proxy-Connection', 'keep-alive'],
    ['TE', 'trailers'],
    ['Trailer', 'x-checksum'],
    ['Transfer-Encoding', 'chunked'],
    ['Upgrade', 'websocket'],
    ['Proxy-Authorization', 'Basic dXNlcjpwYXNz'],
    ['Expect', '100-continue'],
    ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'evil.example'],
    ['Forwarded', 'for=10.0.0.1;proto=https'],
    ['X-Real-IP', '10.0.0.1'],
  ])('drops the hop-by-hop or re-set header %s', (name, value) => {
    const s = scanRequestHeaders(raw(['accept', '*/*'], [name, value]));
    expect(names(s.forward)).toEqual(['accept']);
  });

  it('drops the headers named in Connection, in any case and with spaces', () => {
    const s = scanRequestHeaders(raw(['X-Hop', '1'], ['x-keep', '2'], ['Connection', 'close, X-HOP ,x-other'], ['X-Other', '3']));
    expect(names(s.forward)).toEqual(['x-keep']);
  });

  it('drops the headers named in every Connection header, not only the last', () => {
    const s = scanRequestHeaders(raw(['Connection', 'x-secret-hop'], ['x-secret-hop', 'internal'], ['Connection', 'keep-alive'], ['x-keep', '1']));
    expect(names(s.forward)).toEqual(['x-keep']);
  });

  it('keeps everything when Connection names only close or keep-alive', () => {
    const s = scanRequestHeaders(raw(['connection', 'close'], ['accept', '*/*'], ['x-a', '1']));
    expect(names(s.forward)).toEqual(['accept', 'x-a']);
  });
});

describe('scanRequestHeaders: credentials are held aside', () => {
  it('holds x-api-key aside, never forwarded, whatever its case', () => {
    const s = scanRequestHeaders(raw(['X-API-Key', 'kg_secret'], ['accept', '*/*']));
    expect(s.apiKey).toBe('kg_secret');
    expect(s.apiKeyCount).toBe(1);
    expect(s.forward.join('\n')).not.toContain('kg_secret');
    expect(names(s.forward)).toEqual(['accept']);
  });

  it('holds Authorization aside (forward decides whether it travels on)', () => {
    const s = scanRequestHeaders(raw(['Authorization', 'Bearer kg_secret'], ['accept', '*/*']));
    expect(s.authorization).toBe('Bearer kg_secret');
    expect(s.authorizationCount).toBe(1);
    expect(s.forward.join('\n')).not.toContain('kg_secret');
  });

  it('counts repeated credential headers so identify can refuse the ambiguity', () => {
    const s = scanRequestHeaders(raw(['x-api-key', 'kg_one'], ['X-Api-Key', 'kg_two'], ['authorization', 'Bearer a'], ['authorization', 'Bearer b'], ['authorization', 'Bearer c']));
    expect(s.apiKeyCount).toBe(2);
    expect(s.authorizationCount).toBe(3);
    expect(s.forward).toEqual([]);
  });

  it('reports no credential when none was sent', () => {
    const s = scanRequestHeaders(raw(['accept', '*/*']));
    expect(s.apiKey).toBeUndefined();
    expect(s.apiKeyCount).toBe(0);
    expect(s.authorization).toBeUndefined();
    expect(s.authorizationCount).toBe(0);
  });
});

describe('scanRequestHeaders: request id, forwarding chain, body', () => {
  it.each(['abc-123', '3f1c2a9e-6d3b-4b8f-9f0e-7a1b2c3d4e5f', 'trace:1/span=2+x_y.z', 'a'.repeat(128)])('keeps the sane request id %j', (id) => {
    const s = scanRequestHeaders(raw(['X-Request-Id', id]));
    expect(s.requestId).toBe(id);
    // It is re-set by forward, never passed through as the client wrote it.
    expect(s.forward).toEqual([]);
  });

  it.each([
    ['empty', ''],
    ['too long', 'a'.repeat(129)],
    ['spaces', 'abc def'],
    ['a quote', 'abc"def'],
    ['a newline-like control', 'abc\u0001def'],
    ['a header injection attempt', 'abc\r\nx-keygate-account: admin'],
    ['non-ASCII', 'idé'],
    ['log markup', '<script>'],
  ])('drops an insane request id (%s)', (_name, id) => {
    const s = scanRequestHeaders(raw(['x-request-id', id]));
    expect(s.requestId).toBeUndefined();
    expect(s.forward).toEqual([]);
  });

  it('takes the first sane request id', () => {
    expect(scanRequestHeaders(raw(['x-request-id', 'first'], ['x-request-id', 'second'])).requestId).toBe('first');
    expect(scanRequestHeaders(raw(['x-request-id', 'bad id'], ['x-request-id', 'good'])).requestId).toBe('good');
  });

  it('joins repeated x-forwarded-for in order, and does not forward them as sent', () => {
    const s = scanRequestHeaders(raw(['X-Forwarded-For', '203.0.113.1'], ['accept', '*/*'], ['x-forwarded-for', '198.51.100.2, 10.0.0.3']));
    expect(s.forwardedFor).toBe('203.0.113.1, 198.51.100.2, 10.0.0.3');
    expect(names(s.forward)).toEqual(['accept']);
    expect(scanRequestHeaders(raw(['accept', '*/*'])).forwardedFor).toBeUndefined();
  });

  it.each([
    ['content-length 12', [['Content-Length', '12']], true],
    ['transfer-encoding chunked', [['Transfer-Encoding', 'chunked']], true],
    ['content-length 0', [['content-length', '0']], false],
    ['no framing header', [['accept', '*/*']], false],
  ] as Array<[string, Array<[string, string]>, boolean]>)('detects a body: %s → %s', (_name, headers, hasBody) => {
    expect(scanRequestHeaders(raw(...headers)).hasBody).toBe(hasBody);
  });

  it('forwards content-length (the upstream needs the framing) but not transfer-encoding', () => {
    const s = scanRequestHeaders(raw(['Content-Length', '12'], ['Content-Type', 'text/plain']));
    expect(forwarded(s.forward)).toEqual([['content-length', '12'], ['content-type', 'text/plain']]);
    expect(names(scanRequestHeaders(raw(['Transfer-Encoding', 'chunked'])).forward)).toEqual([]);
  });
});

describe('appendResponseHeaders', () => {
  /** The appended list as an object of name → value (or values, when repeated). */
  const collected = (headers: Record<string, string | string[] | undefined>, ownRateLimit = false) => {
    const out: Record<string, string | string[]> = {};
    const list = appendResponseHeaders([], headers, ownRateLimit);
    for (let i = 0; i < list.length; i += 2) {
      const [n, v] = [list[i]!, list[i + 1]!];
      const prev = out[n];
      out[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return out;
  };

  it('keeps end-to-end headers, repeated ones as repeated pairs', () => {
    expect(appendResponseHeaders([], { 'set-cookie': ['a=1', 'b=2'], etag: '"x"' })).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2', 'etag', '"x"']);
    expect(collected({ 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], etag: '"x"', 'cache-control': 'no-store' })).toEqual({ 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], etag: '"x"', 'cache-control': 'no-store' });
  });

  it('drops hop-by-hop headers, and those keygate sets itself (x-request-id, keygate-credential-expires)', () => {
    const out = collected({
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      te: 'trailers',
      trailer: 'x-sum',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      'proxy-authenticate': 'Basic',
      'x-request-id': 'upstream-id',
      'keygate-credential-expires': '2000-01-01T00:00:00Z',
      'content-type': 'text/plain',
    });
    expect(out).toEqual({ 'content-type': 'text/plain' });
  });

  it('drops the headers the upstream names in Connection: one name, a list, or repeated headers', () => {
    expect(collected({ connection: 'x-hop', 'x-hop': '1', 'x-keep': '2' })).toEqual({ 'x-keep': '2' });
    expect(collected({ connection: 'close, X-A , x-b', 'x-a': '1', 'x-b': '2', 'x-keep': '3' })).toEqual({ 'x-keep': '3' });
    expect(collected({ connection: ['x-a', 'x-b'], 'x-a': '1', 'x-b': '2', 'x-keep': '3' })).toEqual({ 'x-keep': '3' });
  });

  it("lets the upstream's RateLimit-* through only when keygate sets none", () => {
    const upstream = { 'ratelimit-limit': '5', 'x-ratelimit-remaining': '1', 'x-keep': '1' };
    expect(collected(upstream)).toEqual(upstream);
    expect(collected(upstream, true)).toEqual({ 'x-keep': '1' });
  });

  it('skips undefined values', () => {
    expect(collected({ 'x-a': undefined, 'x-b': '1' })).toEqual({ 'x-b': '1' });
  });
});

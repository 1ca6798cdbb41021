// SPEC §4.6: every request the HTTP parser refuses gets a 4xx problem+json answer with a
// keygate code, audited and counted like any other — and, because the parser has lost track of
// where the next request starts, the connection is closed after it: nothing written behind a
// refused request on the same connection is ever processed. Held today and kept held: the
// smuggling classics (CL+TE, obfuscated Transfer-Encoding, duplicate Content-Length) and
// obs-fold are refused; a request whose framing is unusual but unambiguous is forwarded with
// exactly its own body.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { head } from '../helpers/raw-http.js';
import { CODE, SETUP_TIMEOUT_MS, expectRefusal, probe, settleAudit, startTarget, type Code, type Probe, type Target, type Tokens } from './support.js';

let t: Target & { tokens: Tokens };
let secret: string;

beforeAll(async () => {
  t = await startTarget({ config: { listen: { limits: { maxHeaderSize: 4096, headersTimeout: '1s' } } }, tokens: { svc: { roles: ['editor'] } } });
  secret = t.tokens.svc!.secret;
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

/** A smuggled request: if it were ever parsed as a request of its own, the upstream would see this path. */
const SMUGGLED = 'GET /api/items/smuggled HTTP/1.1\r\nHost: api.test\r\nx-api-key: ';
const post = (...lines: string[]) => `POST /api/items HTTP/1.1\r\nHost: api.test\r\nx-api-key: ${secret}\r\n${lines.join('\r\n')}\r\n\r\n`;

describe('requests the parser refuses', () => {
  // [label, request, status, code]; a function, because the token exists only after set-up.
  const refused = (): Array<[string, string, number, Code]> => [
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, CODE.malformed],
    ['a request line with an extra word', `GET /api/items HTTP/1.1 extra\r\nHost: api.test\r\n\r\n`, 400, CODE.malformed],
    ['an unknown HTTP version', `GET /api/items HTTP/9.9\r\nHost: api.test\r\n\r\n`, 400, CODE.malformed],
    ['a header line without a colon', `GET /api/items HTTP/1.1\r\nHost api.test\r\n\r\n`, 400, CODE.malformed],
    ['a head over listen.limits.maxHeaderSize', head('GET /api/items HTTP/1.1', 'Host: api.test', `x-api-key: ${secret}`, `x-pad: ${'p'.repeat(6000)}`), 431, CODE.headersTooLarge],
    ['obs-fold (a header continued on the next line)', `GET /api/items HTTP/1.1\r\nHost: api.test\r\nx-api-key: ${secret}\r\nx-folded: a\r\n b\r\n\r\n`, 400, CODE.malformed],
    ['obs-fold continuing the credential header', `GET /api/items HTTP/1.1\r\nHost: api.test\r\nx-api-key:\r\n ${secret}\r\n\r\n`, 400, CODE.malformed],
    ['a chunk size that is not hex', post('Transfer-Encoding: chunked') + 'zz\r\nhello\r\n0\r\n\r\n', 400, CODE.malformed],
    ['a chunk size that overflows', post('Transfer-Encoding: chunked') + 'fffffffffffffffffff\r\nhello\r\n0\r\n\r\n', 400, CODE.malformed],
    ['a chunk without its CRLF', post('Transfer-Encoding: chunked') + '5\r\nhelloXX0\r\n\r\n', 400, CODE.malformed],
    ['Content-Length and Transfer-Encoding (CL.TE)', post('Content-Length: 6', 'Transfer-Encoding: chunked') + `0\r\n\r\n${SMUGGLED}${secret}\r\n\r\n`, 400, CODE.malformed],
    ['Transfer-Encoding and Content-Length (TE.CL)', post('Transfer-Encoding: chunked', 'Content-Length: 3') + `8\r\nSMUGGLED\r\n0\r\n\r\n`, 400, CODE.malformed],
    ['Transfer-Encoding: chunked, identity', post('Transfer-Encoding: chunked, identity') + `0\r\n\r\n`, 400, CODE.malformed],
    ['Transfer-Encoding : chunked (space before the colon)', post('Transfer-Encoding : chunked') + `0\r\n\r\n`, 400, CODE.malformed],
    ['Transfer-Encoding: identity', post('Transfer-Encoding: identity') + `hello`, 400, CODE.malformed],
    ['Transfer-Encoding twice, chunked not last', post('Transfer-Encoding: chunked', 'Transfer-Encoding: x') + `0\r\n\r\n`, 400, CODE.malformed],
    ['two different Content-Length headers', post('Content-Length: 5', 'Content-Length: 6') + 'hello!', 400, CODE.malformed],
    ['a Content-Length that is not a number', post('Content-Length: 5x') + 'hello', 400, CODE.malformed],
    ['a NUL in a header value', `GET /api/items HTTP/1.1\r\nHost: api.test\r\nx-a: a\u0000b\r\n\r\n`, 400, CODE.malformed],
    ['a bare LF ending a header line', `GET /api/items HTTP/1.1\r\nHost: api.test\nx-api-key: ${secret}\r\n\r\n`, 400, CODE.malformed],
  ];
  const labels = refused().map(([l]) => l);
  const probes = new Map<string, Probe>();

  beforeAll(async () => {
    for (const [label, data] of refused()) probes.set(label, await probe(t, data));
    await settleAudit(t, [...probes.values()]);
  }, SETUP_TIMEOUT_MS);

  it.each(labels)('%s: keygate\'s own 4xx, the connection closed, nothing upstream', async (label) => {
    const spec = refused().find(([l]) => l === label)!;
    const p = probes.get(label)!;
    await expectRefusal(t, p, { status: spec[2], code: spec[3] });
    expect(p.exchange.closed, 'connection closed after a parser refusal').toBe(true);
    expect(p.exchange.responses, 'answers on the connection').toHaveLength(1);
  });

  it('a head that stalls past listen.limits.headersTimeout gets 408 problem+json', async () => {
    const p = await probe(t, ['GET /api/items HTTP/1.1\r\nHost: api.test\r\n'], { timeoutMs: 4_500 });
    await expectRefusal(t, p, { status: 408, code: CODE.requestTimeout });
    expect(p.exchange.closed).toBe(true);
  });
});

describe('pipelining', () => {
  const valid = (path: string, last = false) => head(`GET ${path} HTTP/1.1`, 'Host: api.test', `x-api-key: ${secret}`, ...(last ? ['Connection: close'] : []));

  it('two valid requests in one write are both served, in order', async () => {
    const p = await probe(t, valid('/api/items/1') + valid('/api/items/2', true));
    expect(p.exchange.responses.map((r) => r.status)).toEqual([200, 200]);
    expect(p.received.map((r) => r.url)).toEqual(['/api/items/1', '/api/items/2']);
  });

  // Built when the test runs: the token exists only after set-up.
  it.each([
    ['a malformed request', () => 'GET /api/items HTTP/1.1\r\nHost api.test\r\n\r\n'],
    ['obs-fold', () => `GET /api/items HTTP/1.1\r\nHost: api.test\r\nx-a: 1\r\n 2\r\n\r\n`],
    ['a bad chunk', () => post('Transfer-Encoding: chunked') + 'zz\r\n'],
    ['CL+TE', () => post('Content-Length: 4', 'Transfer-Encoding: chunked') + '0\r\n\r\n'],
  ])('after %s, the request written behind it is never processed', async (_label, bad) => {
    const p = await probe(t, bad() + valid('/api/items/after', true));
    expect(p.exchange.responses.map((r) => r.status)).toEqual([400]);
    expect(p.exchange.closed).toBe(true);
    expect(p.received.map((r) => r.url)).toEqual([]);
  });

  it('a request smuggled in a CL.TE body never reaches the upstream, even sent in pieces', async () => {
    const p = await probe(t, [post('Content-Length: 40', 'Transfer-Encoding: chunked'), { pauseMs: 50 }, '0\r\n\r\n', { pauseMs: 50 }, `${SMUGGLED}${secret}\r\nConnection: close\r\n\r\n`]);
    expect(p.exchange.responses.map((r) => r.status)).toEqual([400]);
    expect(p.received.map((r) => r.url)).toEqual([]);
  });
});

describe('the twins: unusual but unambiguous framing is forwarded with exactly its own body', () => {
  // A second request pipelined behind the body shows where keygate thinks the body ended: it
  // must arrive as a request of its own, and the first body must be exactly "hello".
  const next = () => head('GET /api/items/next HTTP/1.1', 'Host: api.test', `x-api-key: ${secret}`, 'Connection: close');

  it.each([
    ['chunked', 'Transfer-Encoding: chunked'],
    ['chunked after a tab (optional whitespace)', 'Transfer-Encoding: \tchunked'],
    ['CHUNKED in upper case', 'Transfer-Encoding: CHUNKED'],
  ])('%s', async (_label, te) => {
    const p = await probe(t, post(te) + `5\r\nhello\r\n0\r\n\r\n` + next());
    expect(p.exchange.responses.map((r) => r.status)).toEqual([200, 200]);
    // The two go to the upstream on two pool connections at once: the order in which they
    // complete there is the network's, not keygate's. What each one carried is the point.
    expect(p.received.map((r) => `${r.method} ${r.url} ${r.body.toString()}`).sort()).toEqual(['GET /api/items/next ', 'POST /api/items hello']);
  });

  it('Content-Length, with the same value twice', async () => {
    const p = await probe(t, post('Content-Length: 5', 'Content-Length: 5') + 'hello' + next());
    // Identical duplicates are one length (RFC 9110 §8.6 lets a recipient take them as one, or
    // refuse): forwarded with that body, or refused and closed — never read as two lengths.
    if (p.exchange.responses[0]?.status === 400) {
      expect(p.received).toEqual([]);
      return;
    }
    expect(p.received.map((r) => `${r.method} ${r.url} ${r.body.toString()}`)).toEqual(['POST /api/items hello', 'GET /api/items/next ']);
  });
});

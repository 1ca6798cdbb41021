// SPEC §4.6: `Expect: 100-continue` is answered only after identify, limit and authorize have
// passed. A "100 Continue" sent before tells the client to send its body to a request keygate
// is about to refuse (and, for a large upload, makes keygate read it). An Expect value other
// than 100-continue gets 417 problem+json (RFC 9110 §10.1.1), audited and counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawConnection, head } from '../helpers/raw-http.js';
import { forgeToken } from '../helpers/token-forge.js';
import { CODE, SETUP_TIMEOUT_MS, expectForwarded, expectRefusal, probe, startTarget, type Target, type Tokens } from './support.js';

let t: Target & { tokens: Tokens };

beforeAll(async () => {
  t = await startTarget({
    config: { policies: { default: { rate: '1000/s', burst: 1000 }, trickle: { rate: '1/h', burst: 1 } } },
    tokens: { svc: { roles: ['editor'] }, reader: { roles: ['viewer'] }, limited: { roles: ['editor'], policy: 'trickle' } },
  });
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

const upload = (token: string | undefined, path = '/api/items', length = 5) =>
  head(`POST ${path} HTTP/1.1`, 'Host: api.test', ...(token ? [`x-api-key: ${token}`] : []), `Content-Length: ${length}`, 'Expect: 100-continue');

describe('Expect: 100-continue', () => {
  // The client waits for 100 or a final answer, as curl does, and never sends the body: what
  // keygate answers must not depend on a body it has not asked for. 3 s is the bound on that
  // wait; a refusal arrives in milliseconds.
  const refused: Array<[string, () => string, number, string]> = [
    ['an unknown token', () => upload(forgeToken(null)), 401, CODE.tokenUnknown],
    ['no credential', () => upload(undefined), 401, CODE.credentialMissing],
    ['a token without the scope', () => upload(t.tokens.reader!.secret), 403, CODE.scopeDenied],
    ['a token past its rate limit', () => upload(t.tokens.limited!.secret), 429, CODE.rateLimited],
  ];

  it.each(refused)('with %s: the final answer comes without any 100 Continue before it, and the upstream gets nothing', async (label, data, status, code) => {
    if (label === 'a token past its rate limit') {
      // Spend the one-request budget first.
      const first = await probe(t, head('GET /api/items HTTP/1.1', 'Host: api.test', `x-api-key: ${t.tokens.limited!.secret}`, 'Connection: close'));
      expect(first.exchange.responses[0]?.status).toBe(200);
    }
    const p = await probe(t, data(), { responses: 1, timeoutMs: 3_000 });
    expect(p.exchange.informational.map((r) => r.status), '1xx answers before the refusal').toEqual([]);
    await expectRefusal(t, p, { status, code: code as (typeof CODE)[keyof typeof CODE] });
  });

  it('the twin: with a valid, authorized token, 100 Continue comes, then the body is forwarded', async () => {
    const before = await t.snapshot();
    const conn = await RawConnection.open({ port: t.proxy.port, ca: t.env.serverCa.certPem });
    try {
      await conn.write(upload(t.tokens.svc!.secret).replace('Expect: 100-continue\r\n', 'Expect: 100-continue\r\nConnection: close\r\n'));
      const continued = await conn.waitFor(() => conn.parsed().informational.length > 0 || conn.parsed().responses.length > 0, 3_000);
      expect(continued, 'an answer to the head within 3 s').toBe(true);
      expect(conn.parsed().informational.map((r) => r.status)).toEqual([100]);
      // keygate asked for the body before it had any of it: the upstream has nothing yet.
      expect(t.env.upstream.received.length).toBe(before.upstream);
      await conn.write('hello');
      expect(await conn.waitForResponses(1, 3_000)).toBe(true);
    } finally {
      conn.destroy();
    }
    const p = { before, exchange: conn.snapshot(), requestsAfter: 0, received: t.env.upstream.received.slice(before.upstream) };
    const got = expectForwarded(t, p);
    expect(got.body.toString()).toBe('hello');
    expect(got.headers['expect']).toBeUndefined();
  });
});

describe('other Expect values', () => {
  it.each([['something-else'], ['100-continue, x-more'], ['200-ok']])('Expect: %s gets 417 problem+json and reaches nothing', async (value) => {
    const p = await probe(t, head('POST /api/items HTTP/1.1', 'Host: api.test', `x-api-key: ${t.tokens.svc!.secret}`, 'Content-Length: 0', `Expect: ${value}`, 'Connection: close'));
    await expectRefusal(t, p, { status: 417, code: CODE.expectationFailed });
  });

  it('the twin: the same request without Expect is served', async () => {
    const p = await probe(t, head('POST /api/items HTTP/1.1', 'Host: api.test', `x-api-key: ${t.tokens.svc!.secret}`, 'Content-Length: 0', 'Connection: close'));
    expect(expectForwarded(t, p).method).toBe('POST');
  });
});

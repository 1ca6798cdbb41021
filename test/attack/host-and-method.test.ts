// SPEC §4.6: two Host headers, an HTTP/1.1 request without Host, a Host that is not a valid
// host[:port], and CONNECT get a 4xx problem+json answer, audited and counted — not a 502 from
// the upstream client choking on the duplicate, not Node's bare 400, not a silent close.
// Held today and kept held: a request target in absolute or authority form is refused (keygate
// is not a forward proxy), and HTTP/1.0 (where Host is optional) is served like HTTP/1.1.
// CONNECT is answered 405: the method is real HTTP, but no resource behind keygate allows it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { head } from '../helpers/raw-http.js';
import { CODE, SETUP_TIMEOUT_MS, expectForwarded, expectRefusal, probe, settleAudit, startTarget, type Probe, type Target, type Tokens } from './support.js';

let t: Target & { tokens: Tokens };
let secret: string;

beforeAll(async () => {
  t = await startTarget({ tokens: { svc: { roles: ['viewer'] } } });
  secret = t.tokens.svc!.secret;
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

const withHosts = (hosts: string[], version = '1.1') => head(`GET /api/items HTTP/${version}`, ...hosts.map((h) => `Host: ${h}`), `x-api-key: ${secret}`, 'Connection: close');

describe('Host', () => {
  const refused: Array<[string, () => string]> = [
    ['two identical Host headers', () => withHosts(['api.test', 'api.test'])],
    ['two different Host headers', () => withHosts(['api.test', 'evil.test'])],
    ['Host headers of both modes', () => withHosts(['api.test', 'clientauth.api.test'])],
    ['no Host on HTTP/1.1', () => withHosts([])],
    ['an empty Host (an https URI always has an authority)', () => withHosts([''])],
    ['a port out of range', () => withHosts(['api.test:99999'])],
    ['a port that is not a number', () => withHosts(['api.test:https'])],
    ['user info', () => withHosts(['root@api.test'])],
    ['a path', () => withHosts(['api.test/admin'])],
    ['a list in one header', () => withHosts(['api.test, evil.test'])],
    ['a space inside', () => withHosts(['api test'])],
    ['a broken IPv6 literal', () => withHosts(['[::1'])],
    ['an invalid Host on HTTP/1.0', () => withHosts(['api.test:99999'], '1.0')],
  ];
  const probes = new Map<string, Probe>();
  beforeAll(async () => {
    for (const [label, data] of refused) probes.set(label, await probe(t, data()));
    await settleAudit(t, [...probes.values()]);
  }, SETUP_TIMEOUT_MS);

  it.each(refused.map(([label]) => label))('%s: 400 problem+json, and nothing reaches the upstream', async (label) => {
    await expectRefusal(t, probes.get(label)!, { status: 400, code: CODE.hostInvalid });
  });

  it.each([['api.test'], ['API.Test'], ['api.test:443'], ['api.test:8443'], ['127.0.0.1'], ['127.0.0.1:8443'], ['localhost'], ['[::1]:8443']])('the twin: Host %s is served, and forwarded as x-forwarded-host', async (host) => {
    const p = await probe(t, withHosts([host]));
    const got = expectForwarded(t, p);
    expect(got.headers['x-forwarded-host']).toBe(host);
    expect(got.headers['x-keygate-account']).toBe('svc');
  });
});

describe('HTTP/1.0 (held)', () => {
  it('without Host it is served, and the connection closes after the answer', async () => {
    const p = await probe(t, head('GET /api/items HTTP/1.0', `x-api-key: ${secret}`));
    const got = expectForwarded(t, p);
    expect(got.headers['x-keygate-account']).toBe('svc');
    expect(p.exchange.closed).toBe(true);
  });

  it('the twin: without a credential it is refused like HTTP/1.1', async () => {
    const p = await probe(t, head('GET /api/items HTTP/1.0', 'Host: api.test'));
    await expectRefusal(t, p, { status: 401, code: CODE.credentialMissing });
  });
});

describe('CONNECT', () => {
  it.each([
    ['to this host', 'api.test:443', []],
    ['to another port, with a valid token', '127.0.0.1:6379', ['x-api-key']],
  ])('%s gets 405 problem+json, audited and counted, and opens no tunnel', async (_label, authority, extra) => {
    // Waits for the first answer only: whether keygate then closes is its choice.
    const p = await probe(t, head(`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`, ...extra.map((h) => `${h}: ${secret}`)), { responses: 1 });
    await expectRefusal(t, p, { status: 405, code: CODE.methodNotAllowed });
    expect(p.exchange.raw.toString('latin1')).not.toMatch(/^HTTP\/1\.1 200/);
  });
});

describe('request-target forms (held)', () => {
  it.each([
    ['absolute form', 'GET https://api.test/api/items HTTP/1.1'],
    ['absolute form naming another origin', 'GET http://127.0.0.1:6379/ HTTP/1.1'],
    // The HTTP parser refuses this one itself: either code, as long as the answer is keygate's.
    ['authority form on GET', 'GET api.test:443 HTTP/1.1'],
  ])('%s is refused with 400 and reaches nothing', async (_label, line) => {
    const p = await probe(t, head(line, 'Host: api.test', `x-api-key: ${secret}`, 'Connection: close'));
    await expectRefusal(t, p, { status: 400, code: [CODE.pathInvalid, CODE.malformed] });
  });

  it('the twin: origin form is served', async () => {
    const p = await probe(t, head('GET /api/items HTTP/1.1', 'Host: api.test', `x-api-key: ${secret}`, 'Connection: close'));
    expect(expectForwarded(t, p).url).toBe('/api/items');
  });
});

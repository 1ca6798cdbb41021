// SPEC §4.6: header names containing "_" are dropped by default (as NGINX does), so that
// `x_keygate_account` cannot become `X-Keygate-Account` in a framework that maps "_" to "-"
// (WSGI/CGI, some Rack and PHP servers, NGINX with underscores_in_headers on).
// `listen.headersWithUnderscores: reject` refuses such a request with 400; `allow` passes it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { head } from '../helpers/raw-http.js';
import { CODE, SETUP_TIMEOUT_MS, expectForwarded, expectRefusal, expectSecretNotIn, namesOf, probe, startTarget, type Target, type Tokens } from './support.js';

const FORGED = ['x_keygate_account: root', 'X_KEYGATE_SCOPES: keygate:admin', 'x_keygate_auth: mtls', 'x_forwarded_client_cert: Hash=00;Subject="CN=root"', 'x_custom_thing: 1'];

describe('default (drop)', () => {
  let t: Target & { tokens: Tokens };
  beforeAll(async () => {
    t = await startTarget({ tokens: { svc: { roles: ['viewer'] } } });
  }, SETUP_TIMEOUT_MS);
  afterAll(() => t?.env.cleanup());

  it('on a public route, without any credential, no underscore header reaches the upstream; ordinary headers do', async () => {
    const p = await probe(t, head('GET /healthz HTTP/1.1', 'Host: api.test', ...FORGED, 'x-ordinary: kept', 'Connection: close'));
    const got = expectForwarded(t, p);
    expect(namesOf(got).filter((n) => n.includes('_'))).toEqual([]);
    expect(got.headers['x-keygate-account']).toBeUndefined();
    expect(got.headers['x-ordinary']).toBe('kept');
  });

  it('on an authenticated route the identity headers are keygate\'s alone, and no underscore spelling travels beside them', async () => {
    const p = await probe(t, head('GET /api/items/1 HTTP/1.1', 'Host: api.test', `x-api-key: ${t.tokens.svc!.secret}`, ...FORGED, 'Connection: close'));
    const got = expectForwarded(t, p);
    expect(namesOf(got).filter((n) => n.includes('_'))).toEqual([]);
    expect(namesOf(got).filter((n) => n === 'x-keygate-account')).toEqual(['x-keygate-account']);
    expect(got.headers['x-keygate-account']).toBe('svc');
    expect(got.headers['x-keygate-scopes']).toBe('items:read');
  });

  it('a token sent as x_api_key never reaches the upstream', async () => {
    const p = await probe(t, head('GET /healthz HTTP/1.1', 'Host: api.test', `x_api_key: ${t.tokens.svc!.secret}`, 'Connection: close'));
    const got = expectForwarded(t, p);
    expectSecretNotIn(got, t.tokens.svc!.secret);
  });
});

describe('listen.headersWithUnderscores: reject', () => {
  let t: Target & { tokens: Tokens };
  beforeAll(async () => {
    t = await startTarget({ config: { listen: { headersWithUnderscores: 'reject' } }, tokens: { svc: { roles: ['viewer'] } } });
  }, SETUP_TIMEOUT_MS);
  afterAll(() => t?.env.cleanup());

  it('a request with an underscore header is refused with 400, before anything reaches the upstream', async () => {
    const p = await probe(t, head('GET /api/items/1 HTTP/1.1', 'Host: api.test', `x-api-key: ${t.tokens.svc!.secret}`, 'x_keygate_account: root', 'Connection: close'));
    await expectRefusal(t, p, { status: 400, code: CODE.headerUnderscore });
  });

  it('the twin: the same request without it is served', async () => {
    const p = await probe(t, head('GET /api/items/1 HTTP/1.1', 'Host: api.test', `x-api-key: ${t.tokens.svc!.secret}`, 'x-keygate-account: root', 'Connection: close'));
    const got = expectForwarded(t, p);
    expect(got.headers['x-keygate-account']).toBe('svc');
  });
});

describe('listen.headersWithUnderscores: allow', () => {
  let t: Target & { tokens: Tokens };
  beforeAll(async () => {
    t = await startTarget({ config: { listen: { headersWithUnderscores: 'allow' } } });
  }, SETUP_TIMEOUT_MS);
  afterAll(() => t?.env.cleanup());

  it('an underscore header passes to the upstream as sent', async () => {
    const p = await probe(t, head('GET /healthz HTTP/1.1', 'Host: api.test', 'x_trace_id: abc', 'Connection: close'));
    const got = expectForwarded(t, p);
    expect(got.headers['x_trace_id']).toBe('abc');
  });
});

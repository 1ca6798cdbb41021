// SPEC §5: every answer keygate gives itself — whatever the status — is problem+json with
// `x-content-type-options: nosniff` and `cache-control: no-store` (a browser must not sniff it
// into HTML, a cache must not keep it), audited and counted; and it never tells the caller a
// fact about this deployment it did not already have: a wrong-environment 401 names the
// token's environment, not this one's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgeToken } from '../helpers/token-forge.js';
import { head } from '../helpers/raw-http.js';
import { eventually, type ConfigObject, type TestEnv } from '../helpers/harness.js';
import { CODE, SETUP_TIMEOUT_MS, expectForwarded, expectRefusal, probe, settleAudit, startTarget, sumOf, type Code, type Probe, type Target, type Tokens } from './support.js';
import { closedPort, startUpstream, type PlainUpstream } from '../integration/support.js';

const ENVIRONMENT = 'zeta7';

let t: Target & { tokens: Tokens };
let silent: PlainUpstream;
/** The config this file runs with, kept to write it again with one change. */
let config: (env: TestEnv) => ConfigObject;

beforeAll(async () => {
  // An upstream that accepts and never answers (504), and a port nothing listens on (502).
  silent = await startUpstream(() => undefined);
  const down = `http://127.0.0.1:${await closedPort()}`;
  t = await startTarget({
    config: (env) => (config = (e: TestEnv) => ({
      environment: ENVIRONMENT,
      listen: { limits: { maxHeaderSize: 4096 } },
      routes: [
        { pathPrefix: '/healthz', upstream: e.upstream.url, public: true },
        { pathPrefix: '/down', upstream: down },
        { pathPrefix: '/slow', upstream: silent.url, timeout: '1s' },
        { pathPrefix: '/api', upstream: e.upstream.url },
      ],
      scopes: { 'items:read': ['GET /api/items', 'GET /api/items/**'], 'items:write': ['POST /api/items'], 'edge:read': ['GET /down/**', 'GET /slow/**'] },
      roles: { viewer: ['items:read', 'edge:read'], editor: ['items:read', 'items:write'], admin: ['keygate:admin'] },
      policies: { default: { rate: '1000/s', burst: 1000 }, trickle: { rate: '1/h', burst: 1 } },
    }))(env),
    tokens: { svc: { roles: ['viewer'] }, limited: { roles: ['viewer'], policy: 'trickle' } },
  });
}, SETUP_TIMEOUT_MS);
afterAll(async () => {
  await t?.env.cleanup();
  await silent?.close();
});

const get = (path: string, ...headers: string[]) => head(`GET ${path} HTTP/1.1`, 'Host: api.test', ...headers, 'Connection: close');

describe('every status keygate answers itself', () => {
  // [status, code, request]; built when the set-up has run.
  const table = (): Array<[number, Code, string, string]> => [
    [400, CODE.pathInvalid, 'an ambiguous path', get('/api/a%2fb', `x-api-key: ${t.tokens.svc!.secret}`)],
    [401, CODE.credentialMissing, 'no credential', get('/api/items')],
    [403, CODE.scopeDenied, 'no scope for it', head('POST /api/items HTTP/1.1', 'Host: api.test', `x-api-key: ${t.tokens.svc!.secret}`, 'Content-Length: 0', 'Connection: close')],
    [404, CODE.noRoute, 'no route', get('/nowhere', `x-api-key: ${t.tokens.svc!.secret}`)],
    [405, CODE.methodNotAllowed, 'CONNECT', head('CONNECT api.test:443 HTTP/1.1', 'Host: api.test:443', 'Connection: close')],
    [421, CODE.misdirected, 'the Host of the other mode', head('GET /api/items HTTP/1.1', 'Host: clientauth.api.test', 'Connection: close')],
    [429, CODE.rateLimited, 'past the rate limit', get('/api/items', `x-api-key: ${t.tokens.limited!.secret}`)],
    [431, CODE.headersTooLarge, 'a head over the limit', get('/api/items', `x-pad: ${'p'.repeat(5000)}`)],
    [502, CODE.upstreamUnavailable, 'an upstream that refuses', get('/down/x', `x-api-key: ${t.tokens.svc!.secret}`)],
    [504, CODE.upstreamTimeout, 'an upstream that does not answer', get('/slow/x', `x-api-key: ${t.tokens.svc!.secret}`)],
  ];
  const probes = new Map<string, Probe>();

  beforeAll(async () => {
    // The limited token's one-request budget is spent first, so that its next request is 429.
    const spend = await probe(t, get('/api/items', `x-api-key: ${t.tokens.limited!.secret}`));
    expect(spend.exchange.responses[0]?.status).toBe(200);
    for (const [, , label, data] of table()) probes.set(label, await probe(t, data));
    await settleAudit(t, [...probes.values()]);
  }, SETUP_TIMEOUT_MS);

  it.each([400, 401, 403, 404, 405, 421, 429, 431, 502, 504])('%i: problem+json, nosniff, no-store, audited, counted', async (status) => {
    const [, code, label] = table().find(([s]) => s === status)!;
    await expectRefusal(t, probes.get(label)!, { status, code });
  });

  it('the 401 carries WWW-Authenticate and the 429 Retry-After, besides', () => {
    expect(probes.get('no credential')!.exchange.responses[0]?.header('www-authenticate')).toMatch(/^Bearer /);
    expect(Number(probes.get('past the rate limit')!.exchange.responses[0]?.header('retry-after'))).toBeGreaterThan(0);
  });

  it('the twin: an answer from the upstream is passed on as the upstream wrote it', async () => {
    const p = await probe(t, get('/api/items', `x-api-key: ${t.tokens.svc!.secret}`));
    expectForwarded(t, p);
    expect(p.exchange.responses[0]!.header('content-type')).toBe('application/json');
  });
});

describe('503', () => {
  // Maintenance is switched on by a config reload (no second keygate to start), and off again.
  const setMaintenance = async (on: boolean) => {
    const before = sumOf(await t.metrics(), 'keygate_config_reloads_total', { result: 'success' });
    t.env.writeConfig({ ...config(t.env), maintenance: on });
    await eventually(async () => sumOf(await t.metrics(), 'keygate_config_reloads_total', { result: 'success' }) > before, 5_000);
  };
  beforeAll(() => setMaintenance(true), SETUP_TIMEOUT_MS);
  afterAll(() => setMaintenance(false));

  it('maintenance: problem+json, nosniff, no-store, Retry-After, audited, counted', async () => {
    const p = await probe(t, get('/api/items', `x-api-key: ${t.tokens.svc!.secret}`));
    await expectRefusal(t, p, { status: 503, code: CODE.maintenance });
    expect(Number(p.exchange.responses[0]?.header('retry-after'))).toBeGreaterThan(0);
  });

  it('the twin: the public route is still served', async () => {
    const p = await probe(t, get('/healthz'));
    expectForwarded(t, p);
  });
});

describe('the wrong-environment 401', () => {
  it.each([
    ['a token of another environment', () => forgeToken('other'), 'other'],
    ['a token without an environment', () => forgeToken(null), null],
  ])('%s: names only the token\'s own environment, never this deployment\'s', async (_label, token, own) => {
    const p = await probe(t, get('/api/items', `x-api-key: ${token()}`));
    await expectRefusal(t, p, { status: 401, code: CODE.wrongEnvironment });
    const res = p.exchange.responses[0]!;
    expect(res.text().includes(ENVIRONMENT), `the body names this deployment's environment: ${res.json().detail}`).toBe(false);
    for (const [n, v] of res.headerList) expect(v.includes(ENVIRONMENT), `header ${n} names this deployment's environment`).toBe(false);
    if (own) expect(String(res.json().detail)).toContain(`"${own}"`);
  });

  it('the same holds on the admin API', async () => {
    const r = await fetch(`http://127.0.0.1:${t.proxy.adminPort}/admin/v1/accounts`, { headers: { authorization: `Bearer ${forgeToken('other')}` } });
    const text = await r.text();
    expect(r.status).toBe(401);
    expect.soft(text.includes(ENVIRONMENT), `the admin API's answer names this deployment's environment: ${text.slice(0, 300)}`).toBe(false);
    expect.soft(r.headers.get('x-content-type-options'), 'x-content-type-options').toBe('nosniff');
    expect.soft(r.headers.get('cache-control'), 'cache-control').toBe('no-store');
  });

  it('the twin: a token of this environment is served', async () => {
    expect(t.tokens.svc!.secret.startsWith(`kg_${ENVIRONMENT}_`)).toBe(true);
    const p = await probe(t, get('/api/items', `x-api-key: ${t.tokens.svc!.secret}`));
    expectForwarded(t, p);
  });
});

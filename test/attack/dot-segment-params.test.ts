// SPEC §4.6: a path segment that is "." or ".." followed by ";params" is ambiguous and refused
// with 400. keygate reads "..;" as an ordinary segment, but Tomcat-style servers strip the
// parameters first and then resolve the "..": `/healthz/..;/api/items` would pass the public
// /healthz prefix here and reach /api/items there. A ";param" on an ordinary segment is data,
// and travels on untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { head } from '../helpers/raw-http.js';
import { CODE, SETUP_TIMEOUT_MS, expectForwarded, expectRefusal, probe, settleAudit, startTarget, type Probe, type Target, type Tokens } from './support.js';

let t: Target & { tokens: Tokens };

beforeAll(async () => {
  t = await startTarget({ tokens: { svc: { roles: ['viewer'] } } });
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

const get = (path: string, token?: string) => head(`GET ${path} HTTP/1.1`, 'Host: api.test', ...(token ? [`x-api-key: ${token}`] : []), 'Connection: close');

describe('dot segments with parameters', () => {
  const refused: Array<[string, boolean]> = [
    // [path, with a token]: on the public route no credential is needed to try.
    ['/healthz/..;/api/items', false],
    ['/healthz/..;/api/v1/admin', false],
    ['/healthz/..;jsessionid=1/..;/api/items', false],
    ['/.;jsessionid=x/', true],
    ['/.;jsessionid=x/api/items', true],
    ['/api/items/..;x=1/reports', true],
    ['/api/items/.;/1', true],
    ['/healthz/..;', false],
    // Percent-encoded dots are decoded first (they are unreserved), so this is "..;" too.
    ['/healthz/%2e%2e;/api/items', false],
    ['/healthz/.%2E;v=1/api/items', false],
  ];
  const probes = new Map<string, Probe>();

  beforeAll(async () => {
    for (const [path, withToken] of refused) probes.set(path, await probe(t, get(path, withToken ? t.tokens.svc!.secret : undefined)));
    await settleAudit(t, [...probes.values()]);
  }, SETUP_TIMEOUT_MS);

  it.each(refused)('%s is refused with 400 and reaches nothing', async (path) => {
    await expectRefusal(t, probes.get(path)!, { status: 400, code: CODE.pathInvalid });
  });
});

describe('the twins: parameters on ordinary segments', () => {
  it.each([
    ['/api/items/1;v=2', '/api/items/1;v=2'],
    ['/api/items/a..;b', '/api/items/a..;b'],
    ['/api/items/..x;y/1', '/api/items/..x;y/1'],
  ])('%s is served and forwarded as %s', async (path, forwarded) => {
    const p = await probe(t, get(path, t.tokens.svc!.secret));
    const got = expectForwarded(t, p);
    expect(got.url).toBe(forwarded);
    expect(got.headers['x-keygate-account']).toBe('svc');
  });

  it('a public path without parameters is served', async () => {
    const p = await probe(t, get('/healthz'));
    expect(expectForwarded(t, p).url).toBe('/healthz');
  });
});

// Held today and kept held (SPEC §4.5): whatever identity a caller writes into headers never
// reaches the upstream — every incoming x-keygate-* and x-forwarded-client-cert, in any letter
// case, is removed and keygate's own identity set once; and a request carrying more than one
// credential is refused rather than guessed at.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { head } from '../helpers/raw-http.js';
import { CODE, SETUP_TIMEOUT_MS, expectForwarded, expectRefusal, expectSecretNotIn, namesOf, probe, settleAudit, startTarget, type Probe, type Target, type Tokens } from './support.js';

let t: Target & { tokens: Tokens };

beforeAll(async () => {
  t = await startTarget({ tokens: { svc: { roles: ['viewer'] }, other: { roles: ['editor'] } } });
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

const FORGED = [
  'X-Keygate-Account: root',
  'x-KEYGATE-scopes: items:write,keygate:admin',
  'X-KEYGATE-AUTH: mtls',
  'x-keygate-credential: tok_forged',
  'x-KeyGate-Anything-Else: 1',
  'X-Forwarded-Client-Cert: Hash=00;Subject="CN=root"',
  'x-keygate-account:root-without-space',
];
const get = (path: string, ...headers: string[]) => head(`GET ${path} HTTP/1.1`, 'Host: api.test', ...headers, 'Connection: close');

describe('forged identity headers', () => {
  it('are replaced by the real identity, one of each, on an authenticated route', async () => {
    const p = await probe(t, get('/api/items', `x-api-key: ${t.tokens.svc!.secret}`, ...FORGED));
    const got = expectForwarded(t, p);
    const names = namesOf(got);
    for (const n of ['x-keygate-account', 'x-keygate-credential', 'x-keygate-auth', 'x-keygate-scopes']) expect(names.filter((x) => x === n), n).toHaveLength(1);
    expect(got.headers['x-keygate-account']).toBe('svc');
    expect(got.headers['x-keygate-credential']).toBe(t.tokens.svc!.id);
    expect(got.headers['x-keygate-auth']).toBe('api-key');
    expect(got.headers['x-keygate-scopes']).toBe('items:read');
    expect(names).not.toContain('x-keygate-anything-else');
    expect(names).not.toContain('x-forwarded-client-cert');
  });

  it('are removed, not replaced, on a public route', async () => {
    const p = await probe(t, get('/healthz', ...FORGED));
    const got = expectForwarded(t, p);
    expect(namesOf(got).filter((n) => n.startsWith('x-keygate-') || n === 'x-forwarded-client-cert')).toEqual([]);
  });

  it('never reach the upstream when authentication fails', async () => {
    const p = await probe(t, get('/api/items', ...FORGED));
    await expectRefusal(t, p, { status: 401, code: CODE.credentialMissing });
  });

  it('the twin: headers that merely look alike pass untouched', async () => {
    const p = await probe(t, get('/api/items', `x-api-key: ${t.tokens.svc!.secret}`, 'x-keygateway: not ours', 'x-my-keygate-account: app data'));
    const got = expectForwarded(t, p);
    expect(got.headers['x-keygateway']).toBe('not ours');
    expect(got.headers['x-my-keygate-account']).toBe('app data');
  });
});

describe('more than one credential', () => {
  const cases: Array<[string, () => string[]]> = [
    ['x-api-key twice, same token', () => [`x-api-key: ${t.tokens.svc!.secret}`, `x-api-key: ${t.tokens.svc!.secret}`]],
    ['x-api-key twice, letter case differing', () => [`x-api-key: ${t.tokens.svc!.secret}`, `X-API-KEY: ${t.tokens.other!.secret}`]],
    ['Authorization: Bearer twice', () => [`Authorization: Bearer ${t.tokens.svc!.secret}`, `Authorization: Bearer ${t.tokens.other!.secret}`]],
    ['x-api-key and a Bearer of another token', () => [`x-api-key: ${t.tokens.svc!.secret}`, `Authorization: Bearer ${t.tokens.other!.secret}`]],
  ];
  const labels = cases.map(([label]) => label);
  const probes = new Map<string, Probe>();
  beforeAll(async () => {
    for (const [label, headers] of cases) probes.set(label, await probe(t, get('/api/items', ...headers())));
    await settleAudit(t, [...probes.values()]);
  }, SETUP_TIMEOUT_MS);

  it.each(labels)('%s: 401, ambiguous, and nothing reaches the upstream', async (label) => {
    await expectRefusal(t, probes.get(label)!, { status: 401, code: CODE.credentialAmbiguous });
  });

  it('two tokens in one x-api-key value are a malformed token, not two credentials', async () => {
    const p = await probe(t, get('/api/items', `x-api-key: ${t.tokens.svc!.secret}, ${t.tokens.other!.secret}`));
    await expectRefusal(t, p, { status: 401, code: CODE.tokenMalformed });
  });

  it.each([
    ['x-api-key alone', () => [`x-api-key: ${t.tokens.svc!.secret}`]],
    ['Authorization: Bearer alone', () => [`Authorization: Bearer ${t.tokens.svc!.secret}`]],
    ['x-api-key and a Bearer of the same token', () => [`x-api-key: ${t.tokens.svc!.secret}`, `Authorization: Bearer ${t.tokens.svc!.secret}`]],
  ])('the twin: %s is served, and the token does not travel on', async (_label, headers) => {
    const p = await probe(t, get('/api/items', ...headers()));
    const got = expectForwarded(t, p);
    expect(got.headers['x-keygate-account']).toBe('svc');
    expectSecretNotIn(got, t.tokens.svc!.secret);
  });
});

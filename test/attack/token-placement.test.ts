// SPEC §4.6: a keygate token anywhere but `x-api-key` / `Authorization: Bearer` is never
// forwarded. In the query string it is refused with 400 (and a hint to use the header; the
// query string is never logged); under another Authorization scheme or as a bare
// Authorization value it is consumed like a Bearer token: it authenticates, and it does not
// travel on. An Authorization that carries no keygate token is the upstream's own and passes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { head } from '../helpers/raw-http.js';
import { forgeToken } from '../helpers/token-forge.js';
import { CODE, SETUP_TIMEOUT_MS, auditOf, expectForwarded, expectRefusal, expectSecretNotIn, probe, settleAudit, startTarget, type Probe, type Target, type Tokens } from './support.js';

let t: Target & { tokens: Tokens };
let secret: string;

beforeAll(async () => {
  t = await startTarget({ tokens: { svc: { roles: ['viewer'] }, other: { roles: ['viewer'] } } });
  secret = t.tokens.svc!.secret;
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

const req = (target: string, ...headers: string[]) => head(`GET ${target} HTTP/1.1`, 'Host: api.test', ...headers, 'Connection: close');

describe('a token in the query string', () => {
  // [label, () => [target, extra headers]]: built when the test runs, the secret exists only after set-up.
  const cases: Array<[string, () => [string, string[]]]> = [
    ['?api_key= next to a valid x-api-key', () => [`/api/items?api_key=${secret}`, [`x-api-key: ${secret}`]]],
    ['?token= alone', () => [`/api/items?token=${secret}`, []]],
    ['any parameter name', () => [`/api/items?page=2&q=${secret}`, [`x-api-key: ${secret}`]]],
    ['on a public route', () => [`/healthz?token=${secret}`, []]],
    ['percent-encoded "_"', () => [`/api/items?token=kg%5F${secret.slice(3)}`, [`x-api-key: ${secret}`]]],
    ['a well-formed token keygate does not know', () => [`/api/items?access_token=${forgeToken(null)}`, [`x-api-key: ${secret}`]]],
    ['a token of another environment', () => [`/api/items?key=${forgeToken('other')}`, [`x-api-key: ${secret}`]]],
  ];
  const labels = cases.map(([label]) => label);
  const probes = new Map<string, Probe>();
  const sent = new Map<string, string>();

  beforeAll(async () => {
    for (const [label, build] of cases) {
      const [target, headers] = build();
      sent.set(label, target);
      probes.set(label, await probe(t, req(target, ...headers)));
    }
    await settleAudit(t, [...probes.values()]);
  }, SETUP_TIMEOUT_MS);

  it.each(labels)('%s: 400 with a hint to use the header; the query string is not in the audit line', async (label) => {
    const body = await expectRefusal(t, probes.get(label)!, { status: 400, code: CODE.tokenInQuery });
    expect(String(body.hint)).toMatch(/x-api-key|Authorization/);
    const target = sent.get(label)!;
    const query = target.slice(target.indexOf('?'));
    const line = JSON.stringify(auditOf(t.env, String(body.requestId)));
    expect(line).not.toContain(query);
    expect(line).not.toContain(target.slice(target.indexOf('=') + 1));
    expect(line).not.toContain(secret);
  });

  it('the twin: an ordinary query string is forwarded untouched', async () => {
    const p = await probe(t, req('/api/items?page=2&sort=kg&q=kg_', `x-api-key: ${secret}`));
    expect(expectForwarded(t, p).url).toBe('/api/items?page=2&sort=kg&q=kg_');
  });
});

describe('a token under another Authorization form is consumed like a Bearer token', () => {
  it.each([
    ['Basic', (s: string) => `Basic ${s}`],
    ['Token', (s: string) => `Token ${s}`],
    ['a bare value', (s: string) => s],
    ['lower-case bearer', (s: string) => `bearer ${s}`],
  ])('Authorization: %s authenticates and does not travel on', async (_label, form) => {
    const p = await probe(t, req('/api/items', `Authorization: ${form(secret)}`));
    const got = expectForwarded(t, p);
    expect(got.headers['x-keygate-account']).toBe('svc');
    expect(got.headers['authorization'] === undefined, 'an Authorization header reached the upstream').toBe(true);
    expectSecretNotIn(got, secret);
  });

  it('next to x-api-key with the same token: authenticates once, nothing travels on', async () => {
    const p = await probe(t, req('/api/items', `x-api-key: ${secret}`, `Authorization: Token ${secret}`));
    const got = expectForwarded(t, p);
    expect(got.headers['x-keygate-account']).toBe('svc');
    expectSecretNotIn(got, secret);
  });

  it('next to x-api-key with another keygate token: ambiguous, 401', async () => {
    const p = await probe(t, req('/api/items', `x-api-key: ${secret}`, `Authorization: Basic ${t.tokens.other!.secret}`));
    await expectRefusal(t, p, { status: 401, code: CODE.credentialAmbiguous });
  });

  it('an unknown keygate token under another scheme is looked up, and refused, like a Bearer token', async () => {
    const p = await probe(t, req('/api/items', `Authorization: Token ${forgeToken(null)}`));
    await expectRefusal(t, p, { status: 401, code: CODE.tokenUnknown });
  });

  it('on a public route it is removed, not forwarded', async () => {
    const p = await probe(t, req('/healthz', `Authorization: Basic ${secret}`));
    const got = expectForwarded(t, p);
    expect(got.headers['authorization'] === undefined, 'an Authorization header reached the upstream').toBe(true);
    expectSecretNotIn(got, secret);
  });
});

describe('the twins: the upstream\'s own Authorization passes', () => {
  it.each([['Basic dXNlcjpwYXNz'], ['Bearer upstream-own-token'], ['Token abc']])('x-api-key plus Authorization: %s forwards the latter untouched', async (value) => {
    const p = await probe(t, req('/api/items', `x-api-key: ${secret}`, `Authorization: ${value}`));
    const got = expectForwarded(t, p);
    expect(got.headers['authorization']).toBe(value);
    expect(got.headers['x-keygate-account']).toBe('svc');
    expectSecretNotIn(got, secret);
  });
});

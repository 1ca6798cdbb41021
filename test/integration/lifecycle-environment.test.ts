// Environment guard: with `environment: prod` tokens read kg_prod_…; a token minted for another
// environment, or for none, is refused with a 401 whose detail names the environment it
// belongs to — decided from the prefix before any lookup (a well-formed token of another
// environment that no store holds gets the same answer, not "unknown").
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintToken } from '../../src/store/token-format.js';
import { createTestEnv, eventually, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';

// Steps run CLI children (a node start-up each): allow for a busy machine.
vi.setConfig({ testTimeout: 60_000 });

let env: TestEnv;
let proxy: ChildProxy;
let prod: { secret: string; id: string };
let dev: { secret: string; id: string };
let bare: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ environment: 'dev' });
  dev = await env.token('svc', { roles: ['viewer'] });
  env.writeConfig({});
  bare = await env.token('svc');
  env.writeConfig({ environment: 'prod' });
  prod = await env.token('svc');
  proxy = await env.startChild();
}, 120_000); // several CLI children: slow on a busy machine
afterAll(() => env.cleanup());

const call = (secret: string) => request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items', headers: { 'x-api-key': secret } });

describe('environment guard', () => {
  it('mints tokens with the environment in the prefix, and admits them', async () => {
    expect(prod.secret).toMatch(/^kg_prod_[0-9A-Za-z]{39}$/);
    expect(dev.secret).toMatch(/^kg_dev_/);
    expect(bare.secret).toMatch(/^kg_[0-9A-Za-z]{39}$/);
    const res = await call(prod.secret);
    expect(res.status).toBe(200);
  });

  it('refuses a token of another environment with a detail naming it', async () => {
    const before = env.upstream.received.length;
    const res = await call(dev.secret);
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ code: 'KG_ERR_TOKEN_WRONG_ENVIRONMENT', detail: 'The API token belongs to environment "dev", which this keygate does not serve.' });
    // SPEC §5: never this deployment's own environment.
    expect(JSON.stringify(res.json())).not.toContain('prod');
    expect(res.headers['www-authenticate']).toContain('invalid_token');
    expect(env.upstream.received.length).toBe(before);
  });

  it('refuses a token minted without an environment', async () => {
    const res = await call(bare.secret);
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ code: 'KG_ERR_TOKEN_WRONG_ENVIRONMENT', detail: 'The API token has no environment, and this keygate serves tokens of one.' });
    expect(JSON.stringify(res.json())).not.toContain('prod');
  });

  it('decides from the prefix: a well-formed token of another environment that exists nowhere gets the same answer', async () => {
    const res = await call(mintToken('staging'));
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ code: 'KG_ERR_TOKEN_WRONG_ENVIRONMENT', detail: 'The API token belongs to environment "staging", which this keygate does not serve.' });
    const unknown = await call(mintToken('prod'));
    expect(unknown.json().code).toBe('KG_ERR_TOKEN_UNKNOWN');
  });

  it('the admin API applies the same guard', async () => {
    const ops = await env.token('ops', { roles: ['admin'] }); // minted for prod
    await eventually(async () => (await fetch(`http://127.0.0.1:${proxy.adminPort}/admin/v1/accounts`, { headers: { 'x-api-key': ops.secret } })).status === 200, 1_000);
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/admin/v1/accounts`, { headers: { 'x-api-key': dev.secret } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { detail: string }).detail).toContain('environment "dev"');
  });
});

// Identify: every way a token can stop working gives 401 with its own code (and a metric
// reason), while a live token of the same account next to it keeps working. Each change is
// made with the CLI against the running proxy, which sees it within a second (the tokens
// themselves are written into the store directly: making them is not what this file tests). A token that
// expires is in lifecycle-clock.test.ts, where the clock is moved instead of waited for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, readJsonLines, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintToken } from '../../src/store/token-format.js';
import { CLI_TEST_TIMEOUT_MS, SETUP_TIMEOUT_MS, awaitAudit, metricsOf, sample, seedToken } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;

beforeAll(async () => {
  env = await createTestEnv();
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

async function call(secret: string) {
  const before = env.upstream.received.length;
  const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/1', headers: { 'x-api-key': secret } });
  return { res, reached: env.upstream.received.length - before };
}

const failures = async (reason: string) => sample(await metricsOf(proxy), 'keygate_auth_failures_total', { reason });

/** Waits (bounded) until `secret` is refused with `code`, then checks the answer and metric. */
async function expectRefused(secret: string, code: string, reason: string, boundMs = 2_000): Promise<void> {
  let last: Awaited<ReturnType<typeof call>> | undefined;
  await eventually(async () => {
    last = await call(secret);
    return last.res.status === 401;
  }, boundMs);
  const before = await failures(reason);
  const { res, reached } = await call(secret);
  expect(res.status).toBe(401);
  expect(res.headers['content-type']).toBe('application/problem+json');
  expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate", error="invalid_token"');
  const body = res.json<{ code: string; detail: string }>();
  expect(body.code).toBe(code);
  expect(body.detail).not.toContain(secret);
  expect(reached).toBe(0);
  expect(last!.reached).toBe(0);
  expect(await failures(reason)).toBe(before + 1);
}

async function expectAllowed(secret: string): Promise<void> {
  const { res, reached } = await call(secret);
  expect(res.status).toBe(200);
  expect(reached).toBe(1);
}

describe('token states', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('unknown: well-formed, right checksum, never issued', async () => {
    const live = await seedToken(env, 'svc-unknown');
    const neverIssued = mintToken(null);
    await eventually(async () => (await call(live.secret)).res.status === 200, 3_000);
    await expectRefused(neverIssued, 'KG_ERR_TOKEN_UNKNOWN', 'token_unknown');
    await expectAllowed(live.secret);
  });

  it('malformed: a live token with one character changed', async () => {
    const live = await seedToken(env, 'svc-malformed');
    const last = live.secret.at(-1) === 'A' ? 'B' : 'A';
    await eventually(async () => (await call(live.secret)).res.status === 200, 3_000);
    await expectRefused(live.secret.slice(0, -1) + last, 'KG_ERR_TOKEN_MALFORMED', 'token_malformed');
    await expectAllowed(live.secret);
  });

  it('revoked with the CLI', async () => {
    const doomed = await seedToken(env, 'svc-revoke');
    const live = await seedToken(env, 'svc-revoke');
    await eventually(async () => (await call(doomed.secret)).res.status === 200, 3_000);
    const r = await env.cli(['token', 'revoke', doomed.id, '--reason', 'leaked in a build log']);
    expect(r.code).toBe(0);
    await expectRefused(doomed.secret, 'KG_ERR_TOKEN_REVOKED', 'token_revoked');
    await expectAllowed(live.secret);
  });

  it('account disabled, and enabled again', async () => {
    const t = await seedToken(env, 'svc-disable');
    const neighbour = await seedToken(env, 'svc-neighbour');
    await eventually(async () => (await call(t.secret)).res.status === 200, 3_000);
    expect((await env.cli(['account', 'disable', 'svc-disable'])).code).toBe(0);
    await expectRefused(t.secret, 'KG_ERR_ACCOUNT_DISABLED', 'account_disabled');
    await expectAllowed(neighbour.secret);
    expect((await env.cli(['account', 'enable', 'svc-disable'])).code).toBe(0);
    await eventually(async () => (await call(t.secret)).res.status === 200, 3_000);
  });

  it('account past its end date', async () => {
    const t = await seedToken(env, 'svc-ended');
    const future = await seedToken(env, 'svc-future');
    expect((await env.cli(['account', 'update', 'svc-future', '--end-date', '2999-12-31'])).code).toBe(0);
    await eventually(async () => (await call(t.secret)).res.status === 200, 3_000);
    const r = await env.cli(['account', 'update', 'svc-ended', '--end-date', '2020-01-31']);
    expect(r.code, r.stderr).toBe(0);
    await expectRefused(t.secret, 'KG_ERR_ACCOUNT_ENDED', 'account_ended');
    await expectAllowed(future.secret);
  });

  it('missing: no credential at all', async () => {
    const before = await failures('credential_missing');
    const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/1' });
    expect(res.status).toBe(401);
    expect(res.json().code).toBe('KG_ERR_CREDENTIAL_MISSING');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate"');
    expect(await failures('credential_missing')).toBe(before + 1);
  });

  it('audits a refused known token with its credential id and account, never its secret', async () => {
    const t = await seedToken(env, 'svc-audited');
    // Known to the proxy first: otherwise the 401 awaited below can be the not-yet-seen token's.
    await eventually(async () => (await call(t.secret)).res.status === 200, 3_000);
    expect((await env.cli(['token', 'revoke', t.id])).code).toBe(0);
    let refused: Awaited<ReturnType<typeof call>> | undefined;
    await eventually(async () => (refused = await call(t.secret)).res.status === 401, 2_000);
    const entries = await awaitAudit(env.auditFile, (e) => e.event === 'request' && e.requestId === refused!.res.headers['x-request-id']);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ account: 'svc-audited', credential: t.id, auth: 'api-key', status: 401, decision: 'deny', reason: 'KG_ERR_TOKEN_REVOKED' });
    expect(JSON.stringify(readJsonLines(env.auditFile))).not.toContain(t.secret);
  });
});

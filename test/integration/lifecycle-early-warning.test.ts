// Early warning: a credential within credentials.warnBefore of its end (own expiry or its
// account's end date) gets `keygate-credential-expires: <RFC 3339>` on its responses, the audit
// log records a warning at most once a (UTC) day per credential, and
// keygate_credential_expiry_timestamp_seconds exports the credentials inside that window and
// each account's end date and soonest end, following the clock.
//
// Why in-process: "once a day" is only tested by letting a day pass, and the built binary
// cannot take an injected clock. The proxy runs in-process with a clock the test moves a day
// forward; the store is changed with the CLI, requests and metrics go over the wire.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnv, eventually, request, type InProcessProxy, type TestEnv } from '../helpers/harness.js';

// Steps run CLI children (a node start-up each): allow for a busy machine.
vi.setConfig({ testTimeout: 60_000 });

const DAY = 86_400_000;
let env: TestEnv;
let proxy: InProcessProxy;
let offset = 0;
let near: { secret: string; id: string; expiresAt: string };
let far: { secret: string; id: string; expiresAt: string };
let ending: { secret: string; id: string };
const endDay = new Date(Date.now() + DAY).toISOString().slice(0, 10);

async function tokenWithExpiry(account: string, expires: string) {
  const t = await env.token(account, { roles: ['viewer'], expires });
  const r = await env.cli(['token', 'show', t.id, '--json']);
  return { ...t, expiresAt: JSON.parse(r.stdout).expiresAt as string };
}

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ credentials: { warnBefore: '3d' } });
  near = await tokenWithExpiry('warned', '2d');
  far = await tokenWithExpiry('warned', '10d');
  await env.cli(['account', 'create', '--name', 'ending', '--role', 'viewer', '--end-date', endDay]);
  ending = await env.token('ending');
  proxy = await env.startInProcess({ now: () => Date.now() + offset });
}, 120_000); // several CLI children: slow on a busy machine
afterAll(() => env.cleanup());

const call = (secret: string) => request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items', headers: { 'x-api-key': secret } });
const rfc3339 = (iso: string) => iso.replace(/\.\d{3}Z$/, 'Z');
const warnings = (id: string) => proxy.audit.entries.filter((e) => e.event === 'request' && e.credential === id && e.warning !== undefined);

async function metrics(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`);
  return res.text();
}

function expiryMetric(text: string, account: string, credential: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`keygate_credential_expiry_timestamp_seconds{account="${account}",credential="${credential}"}`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('early warning', () => {
  it('sends keygate-credential-expires for a token within warnBefore of its expiry, not for one further out', async () => {
    const res = await call(near.secret);
    expect(res.status).toBe(200);
    expect(res.headers['keygate-credential-expires']).toBe(rfc3339(near.expiresAt));
    expect(Number.isNaN(Date.parse(res.headers['keygate-credential-expires'] as string))).toBe(false);

    const quiet = await call(far.secret);
    expect(quiet.status).toBe(200);
    expect(quiet.headers['keygate-credential-expires']).toBeUndefined();
  });

  it("warns for an account's end date too (23:59:59 UTC of that day)", async () => {
    const res = await call(ending.secret);
    expect(res.status).toBe(200);
    expect(res.headers['keygate-credential-expires']).toBe(`${endDay}T23:59:59Z`);
  });

  it('audits the warning at most once a day per credential', async () => {
    for (let i = 0; i < 3; i++) expect((await call(near.secret)).status).toBe(200);
    expect(warnings(near.id)).toHaveLength(1);
    expect(warnings(near.id)[0]!.warning).toBe(`credential ends ${rfc3339(near.expiresAt)}`);
    expect(warnings(far.id)).toHaveLength(0);

    offset += DAY; // the next (UTC) day; the token still has about a day left
    const res = await call(near.secret);
    expect(res.status).toBe(200);
    expect(res.headers['keygate-credential-expires']).toBe(rfc3339(near.expiresAt));
    await call(near.secret);
    expect(warnings(near.id)).toHaveLength(2);
    offset = 0;
  });

  it('exports the credentials inside their warning window, and per account its end date and soonest end', async () => {
    let text = await metrics();
    expect(expiryMetric(text, 'warned', near.id)).toBeCloseTo(Date.parse(near.expiresAt) / 1000, 2);
    // 10 days out, outside warnBefore (3d): no series of its own, only inside its account's soonest.
    expect(expiryMetric(text, 'warned', far.id)).toBeUndefined();
    expect(expiryMetric(text, 'warned', 'soonest')).toBeCloseTo(Date.parse(near.expiresAt) / 1000, 2);
    const endOfDay = Date.parse(`${endDay}T23:59:59.999Z`) / 1000;
    expect(expiryMetric(text, 'ending', 'account')).toBeCloseTo(endOfDay, 2);
    expect(expiryMetric(text, 'ending', 'soonest')).toBeCloseTo(endOfDay, 2);
    expect(expiryMetric(text, 'ending', ending.id)).toBeCloseTo(endOfDay, 2);

    // Time passes, nothing in the store changes: 8 days on, the far token is inside its window
    // and the near one has ended; the account that ended keeps only its end date.
    offset = 8 * DAY;
    try {
      text = await metrics();
      expect(expiryMetric(text, 'warned', far.id)).toBeCloseTo(Date.parse(far.expiresAt) / 1000, 2);
      expect(expiryMetric(text, 'warned', near.id)).toBeUndefined();
      expect(expiryMetric(text, 'warned', 'soonest')).toBeCloseTo(Date.parse(far.expiresAt) / 1000, 2);
      expect(expiryMetric(text, 'ending', ending.id)).toBeUndefined();
      expect(expiryMetric(text, 'ending', 'soonest')).toBeUndefined();
      expect(expiryMetric(text, 'ending', 'account')).toBeCloseTo(endOfDay, 2);
    } finally {
      offset = 0;
    }
    text = await metrics();
    expect(expiryMetric(text, 'warned', far.id)).toBeUndefined();
    expect(expiryMetric(text, 'warned', near.id)).toBeDefined();
  });

  it('updates the metric within 1 s of a change: a revoked token is no longer exported', async () => {
    expect((await env.cli(['token', 'revoke', near.id])).code).toBe(0);
    await eventually(async () => expiryMetric(await metrics(), 'warned', near.id) === undefined, 1_000);
    // The account's soonest end moves on to what is left in it.
    expect(expiryMetric(await metrics(), 'warned', 'soonest')).toBeCloseTo(Date.parse(far.expiresAt) / 1000, 2);
  });

  it('warnBefore is configurable; its default is 14 days', async () => {
    const later = await tokenWithExpiry('warned', '10d');
    await eventually(async () => (await call(later.secret)).status === 200, 1_000);
    expect((await call(later.secret)).headers['keygate-credential-expires']).toBeUndefined();
    env.writeConfig({}); // back to the default warnBefore
    await eventually(async () => (await call(later.secret)).headers['keygate-credential-expires'] === rfc3339(later.expiresAt), 2_000);
  });
});

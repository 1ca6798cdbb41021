// Issue 8 / SPEC §2: a calendar day that does not exist is an error that names the input, on
// every path that takes a date (the CLI and the admin API; token expiry, account end date,
// certificate binding end date) — never silently rolled over (2027-02-30 is not 2027-03-02).
// And a day means the same instant everywhere: the end of that day, from one function, whether
// it was given to the CLI or the admin API, as an expiry or as an end date.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { eventually } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, sumOf, startTarget, type Target, type Tokens } from './support.js';
import { CLI_TEST_TIMEOUT_MS } from '../integration/support.js';

let t: Target & { tokens: Tokens };

beforeAll(async () => {
  t = await startTarget({ tokens: { svc: { roles: ['viewer'] }, ops: { roles: ['admin'] } } });
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(`http://127.0.0.1:${t.proxy.adminPort}/admin/v1/${path}`, {
    method,
    headers: { authorization: `Bearer ${t.tokens.ops!.secret}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined, headers: r.headers };
}

// Each binding needs its own fingerprint: one that was bound cannot be bound again.
let fingerprints = 0;
const fingerprint = () => (++fingerprints).toString(16).padStart(64, 'a');

// Days that do not exist, and date-times on such a day. All in the future, so that "in the
// past" cannot be why they are refused.
const IMPOSSIBLE = ['2027-02-30', '2027-04-31', '2030-02-29', '2027-13-01', '2027-00-10', '2027-02-30T12:00:00Z'];
// Each CLI case is a Node start-up: the CLI gets the three that differ in kind (a day past the
// month's end, a leap day of a common year, a date-time on such a day); the admin API, cheap
// to call, gets them all. Both paths share one parser, so that is enough on the CLI.
const CLI_IMPOSSIBLE = ['2027-02-30', '2030-02-29', '2027-02-30T12:00:00Z'];

describe('impossible dates on the CLI', () => {
  it.each(CLI_IMPOSSIBLE)('token create --expires %s fails, naming the input, and creates nothing', async (day) => {
    const before = readFileSync(t.env.credentialsFile, 'utf8');
    const r = await t.env.cli(['token', 'create', '--account', 'svc', '--expires', day, '--json']);
    // On failure, say what the date became (never the secret).
    const took = r.code === 0 ? `accepted, expiresAt ${JSON.parse(r.stdout).expiresAt}` : '';
    expect(r.code, `exit code: ${took}`).not.toBe(0);
    expect(r.stderr).toContain(day);
    expect(r.stdout).not.toMatch(/kg_/);
    expect(readFileSync(t.env.credentialsFile, 'utf8')).toBe(before);
  }, CLI_TEST_TIMEOUT_MS);

  it.each(CLI_IMPOSSIBLE.slice(0, 2))('account create --end-date %s fails, naming the input', async (day) => {
    const r = await t.env.cli(['account', 'create', '--name', `bad-${day}`, '--role', 'viewer', '--end-date', day]);
    expect(r.code, 'exit code: accepted').not.toBe(0);
    expect(r.stderr).toContain(day);
  }, CLI_TEST_TIMEOUT_MS);

  it.each(CLI_IMPOSSIBLE.slice(0, 1))('cert bind --end-date %s fails, naming the input', async (day) => {
    const r = await t.env.cli(['cert', 'bind', '--account', 'svc', '--fingerprint', fingerprint(), '--end-date', day, '--json']);
    expect(r.code, `exit code: ${r.code === 0 ? `accepted, endDate ${JSON.parse(r.stdout).endDate}` : ''}`).not.toBe(0);
    expect(r.stderr).toContain(day);
  }, CLI_TEST_TIMEOUT_MS);

  it('the twin: a leap day that exists is taken, as that day', async () => {
    const r = await t.env.cli(['token', 'create', '--account', 'svc', '--expires', '2028-02-29', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).expiresAt).toMatch(/^2028-02-29T23:59:59/);
  }, CLI_TEST_TIMEOUT_MS);
});

describe('impossible dates on the admin API', () => {
  it.each(IMPOSSIBLE)('POST tokens with expires %s: 400 problem+json naming the input', async (day) => {
    const r = await admin('POST', 'tokens', { account: 'svc', expires: day });
    expect(r.status, `status: ${r.status === 201 ? `accepted, expiresAt ${r.body.expiresAt}` : ''}`).toBe(400);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(String(r.body.detail)).toContain(day);
  });

  it.each(IMPOSSIBLE.slice(0, 3))('POST accounts with endDate %s: 400 problem+json naming the input', async (day) => {
    const r = await admin('POST', 'accounts', { name: `api-bad-${day}`, roles: ['viewer'], endDate: day });
    expect(r.status, `status: ${r.status === 201 ? `accepted, endDate ${r.body.endDate}` : ''}`).toBe(400);
    expect(String(r.body.detail)).toContain(day);
  });

  it('the twin: a day that exists is taken', async () => {
    const r = await admin('POST', 'tokens', { account: 'svc', expires: '2028-02-29' });
    expect(r.status).toBe(201);
    expect(r.body.expiresAt).toMatch(/^2028-02-29T23:59:59/);
  });
});

describe('end of day', () => {
  const DAY = '2027-06-30';

  it('is the same instant for a token (CLI and admin API), an account end date (CLI and admin API) and a binding end date', async () => {
    const cliToken = await t.env.cli(['token', 'create', '--account', 'svc', '--expires', DAY, '--json']);
    expect(cliToken.code, cliToken.stderr).toBe(0);
    const apiToken = await admin('POST', 'tokens', { account: 'svc', expires: DAY });
    expect(apiToken.status).toBe(201);
    const cliAccount = await t.env.cli(['account', 'create', '--name', 'ends-cli', '--role', 'viewer', '--end-date', DAY]);
    expect(cliAccount.code, cliAccount.stderr).toBe(0);
    const apiAccount = await admin('POST', 'accounts', { name: 'ends-api', roles: ['viewer'], endDate: DAY });
    expect(apiAccount.status).toBe(201);
    const bind = await t.env.cli(['cert', 'bind', '--account', 'svc', '--fingerprint', fingerprint(), '--end-date', DAY, '--json']);
    expect(bind.code, bind.stderr).toBe(0);

    // The account end instants, as the running proxy enforces them (it exports them in ms/1000).
    let metrics = '';
    await eventually(async () => {
      metrics = await t.metrics();
      return sumOf(metrics, 'keygate_credential_expiry_timestamp_seconds', { account: 'ends-cli', credential: 'account' }) > 0 && sumOf(metrics, 'keygate_credential_expiry_timestamp_seconds', { account: 'ends-api', credential: 'account' }) > 0;
    }, 3_000);
    const accountEnd = (name: string) => Math.round(sumOf(metrics, 'keygate_credential_expiry_timestamp_seconds', { account: name, credential: 'account' }) * 1000);

    const instants = {
      'token create --expires (CLI)': Date.parse(JSON.parse(cliToken.stdout).expiresAt),
      'POST tokens expires (admin API)': Date.parse(apiToken.body.expiresAt),
      'account create --end-date (CLI), as enforced': accountEnd('ends-cli'),
      'POST accounts endDate (admin API), as enforced': accountEnd('ends-api'),
      'cert bind --end-date (CLI)': Date.parse(JSON.parse(bind.stdout).endDate),
    };
    const iso = Object.fromEntries(Object.entries(instants).map(([path, at]) => [path, Number.isFinite(at) ? new Date(at).toISOString() : String(at)]));
    expect(iso['token create --expires (CLI)']!.slice(0, 10)).toBe(DAY);
    expect(new Set(Object.values(iso)).size, `one instant for every path: ${JSON.stringify(iso)}`).toBe(1);
  }, CLI_TEST_TIMEOUT_MS);
});

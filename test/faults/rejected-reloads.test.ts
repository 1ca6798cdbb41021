// Issue 8 / SPEC §3, §7: a bad new version of a file keygate watches is a rejected change —
// the old state keeps serving, the rejection is logged, audited (config.rejected) and counted
// in keygate_config_reloads_total{result="rejected"}, the one metric for every rejected reload.
// For the credential file that includes an empty, truncated or deleted file (what a full disk,
// a crashed editor or a wrong `rm` leaves behind): v0.1 took each of them as "no credentials"
// and every token stopped working at once. Emptying the store on purpose, through the CLI,
// is a change like any other (the twin).
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, readJsonLines, request } from '../helpers/harness.js';
import { CLI_TEST_TIMEOUT_MS, writeAtomic } from '../integration/support.js';
import { SETUP_TIMEOUT_MS, sumOf, startTarget, type Target, type Tokens } from '../attack/support.js';

let t: Target & { tokens: Tokens };
let original: string;

beforeAll(async () => {
  t = await startTarget({ tokens: { svc: { roles: ['viewer'] } } });
  original = readFileSync(t.env.credentialsFile, 'utf8');
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

const status = async () => (await request({ port: t.proxy.port, ca: t.env.serverCa.certPem, path: '/api/items', headers: { 'x-api-key': t.tokens.svc!.secret } })).status;

interface Reloads {
  rejected: number;
  success: number;
  storeRejected: number;
  tlsRejected: number;
}
async function reloads(): Promise<Reloads> {
  const m = await t.metrics();
  return {
    rejected: sumOf(m, 'keygate_config_reloads_total', { result: 'rejected' }),
    success: sumOf(m, 'keygate_config_reloads_total', { result: 'success' }),
    storeRejected: sumOf(m, 'keygate_store_reloads_total', { result: 'rejected' }),
    tlsRejected: sumOf(m, 'keygate_tls_reloads_total', { result: 'rejected' }),
  };
}

const rejectedEvents = (target: string) => readJsonLines(t.env.auditFile).filter((l) => l.event === 'config.rejected' && l.target === target).length;

/** Applies `change`, waits (bounded) until keygate has decided, and returns the counts before and after. */
async function decide(change: () => void): Promise<{ before: Reloads; after: Reloads }> {
  const before = await reloads();
  change();
  let after = before;
  await eventually(async () => {
    after = await reloads();
    return after.rejected > before.rejected || after.success > before.success;
  }, 3_000).catch(() => undefined);
  return { before, after };
}

async function restore(): Promise<void> {
  const { before, after } = await decide(() => writeAtomic(t.env.credentialsFile, original));
  expect(after.success, 'the restored file is taken').toBeGreaterThan(before.success);
  expect(await status()).toBe(200);
}

describe('a damaged credential file is a rejected change', () => {
  const cut = (text: string, at: number) => text.slice(0, at);
  it.each([
    ['emptied', () => writeAtomic(t.env.credentialsFile, '')],
    ['truncated in the middle of a record', () => writeAtomic(t.env.credentialsFile, cut(original, original.indexOf('"hash":') + 20))],
    // Cut at a line boundary the rest still parses: only an end-of-file mark (or a count) can
    // tell it from an edit, and a half-written file must not cost every token.
    ['truncated at a line boundary, before the tokens', () => writeAtomic(t.env.credentialsFile, cut(original, original.search(/^tokens:/m)))],
    ['truncated in place (not replaced by rename)', () => writeFileSync(t.env.credentialsFile, cut(original, Math.floor(original.length / 3)))],
    ['deleted', () => unlinkSync(t.env.credentialsFile)],
  ])('%s: tokens keep working, and the rejection is counted and audited', async (_label, change) => {
    expect(await status()).toBe(200);
    const events = rejectedEvents('credentials');
    const { before, after } = await decide(change);
    try {
      expect.soft(await status(), 'the token after the change').toBe(200);
      expect.soft(after.rejected - before.rejected, 'keygate_config_reloads_total{result="rejected"}').toBeGreaterThanOrEqual(1);
      expect.soft(after.storeRejected - before.storeRejected, 'keygate_store_reloads_total{result="rejected"}').toBeGreaterThanOrEqual(1);
      expect.soft(after.success - before.success, 'reloads taken').toBe(0);
      await eventually(() => rejectedEvents('credentials') > events, 3_000).catch(() => undefined);
      expect.soft(rejectedEvents('credentials') - events, 'config.rejected audit events').toBeGreaterThanOrEqual(1);
    } finally {
      await restore();
    }
  });

  it('the twin: emptied on purpose through the CLI, the change is taken and the token stops working', async () => {
    const r = await t.env.cli(['account', 'delete', 'svc', '--force']);
    expect(r.code, r.stderr).toBe(0);
    await eventually(async () => (await status()) === 401, 3_000);
    // Back as it was, for nobody after this test.
    await restore();
  }, CLI_TEST_TIMEOUT_MS);
});

describe('a rejected TLS reload', () => {
  it('is counted under keygate_config_reloads_total{result="rejected"}, and the old certificate keeps serving', async () => {
    const certFile = join(t.env.dir, 'server.crt');
    const good = readFileSync(certFile, 'utf8');
    const { before, after } = await decide(() => writeAtomic(certFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n'));
    try {
      expect.soft(after.tlsRejected - before.tlsRejected, 'keygate_tls_reloads_total{result="rejected"}').toBeGreaterThanOrEqual(1);
      expect.soft(after.rejected - before.rejected, 'keygate_config_reloads_total{result="rejected"}').toBeGreaterThanOrEqual(1);
      expect.soft(await status(), 'served with the old certificate').toBe(200);
    } finally {
      writeAtomic(certFile, good);
    }
  });
});

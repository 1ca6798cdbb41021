// keygate_credential_expiry_timestamp_seconds kept in step with the index change by change
// (observe/inventory-metrics.ts CredentialExpiry.some) shows exactly the series a full export
// of the same index shows, after each kind of change: new, revoked, restored, moved and deleted
// credentials, an account's end date set and cleared, an account deleted with its credentials.
// Its series stay bounded: per credential only inside credentials.warnBefore (14 days by
// default) of its end, per account its end date and soonest end; and it follows the clock.
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { UpstreamPools } from '../../src/forward/upstream-pools.js';
import { CredentialExpiry } from '../../src/observe/inventory-metrics.js';
import { KeygateMetrics } from '../../src/observe/metrics.js';
import { compileConfig } from '../../src/runtime/compile.js';
import { LiveIndex } from '../../src/runtime/credential-index.js';
import type { AccountRecord, StoreChange, TokenRecord } from '../../src/store/types.js';

const AT = '2030-01-01T00:00:00.000Z';
/** The clock of these tests: 2030-01-25, so that an end before 2030-02-08 is inside the window. */
const NOW = Date.parse('2030-01-25T00:00:00.000Z');
const DAY = 86_400_000;
const pools = new UpstreamPools();
afterAll(() => pools.closeAll(true));
const config = configSchema.parse({ listen: { tls: { cert: 'x.crt', key: 'x.key' } }, routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:1' }], scopes: { 'a:read': ['GET /a'] }, roles: { reader: ['a:read'] } });
const compiled = compileConfig(config, pools).compiled!;

const account = (name: string, endDate: string | null = null): AccountRecord => ({ name, description: '', owner: '', endDate, roles: ['reader'], scopes: [], policy: null, disabled: false, createdAt: AT, updatedAt: AT });
const token = (id: string, acct: string, over: Partial<TokenRecord> = {}): TokenRecord => ({ id, account: acct, label: '', hash: id.replace(/\D/g, '').padStart(64, '0'), environment: null, scopes: null, policy: null, status: 'active', createdAt: AT, expiresAt: null, revokedAt: null, revokeReason: null, rotatedFrom: null, rotatedTo: null, ...over });

async function series(export_: (m: KeygateMetrics) => void): Promise<string[]> {
  const registry = new Registry();
  export_(new KeygateMetrics(registry));
  const text = await registry.getSingleMetricAsString('keygate_credential_expiry_timestamp_seconds');
  return text.split('\n').filter((l) => !l.startsWith('#') && l !== '').sort();
}

describe('credential expiry series, change by change', () => {
  it('equal a full export of the same index after every step', async () => {
    const index = LiveIndex.build(compiled, { version: 1, accounts: [account('a'), account('b', '2031-06-30')], tokens: [token('tok_1', 'a', { expiresAt: '2030-01-30T00:00:00.000Z' }), token('tok_2', 'b', { expiresAt: '2031-01-01T00:00:00.000Z' }), token('tok_3', 'b', { expiresAt: '2030-02-05T00:00:00.000Z' })], certificates: [] });
    const registry = new Registry();
    const metrics = new KeygateMetrics(registry);
    const live = new CredentialExpiry(metrics, () => NOW);
    live.all(index);
    const steps: Array<[string, StoreChange[]]> = [
      ['a new token', [{ op: 'put', kind: 'token', record: token('tok_4', 'a', { expiresAt: '2030-02-01T00:00:00.000Z' }) }]],
      ['a revocation (its series goes)', [{ op: 'put', kind: 'token', record: token('tok_1', 'a', { status: 'revoked' }) }]],
      ['a restore (it comes back)', [{ op: 'put', kind: 'token', record: token('tok_1', 'a', { expiresAt: '2030-01-30T00:00:00.000Z' }) }]],
      ['a token moved to another account', [{ op: 'put', kind: 'token', record: token('tok_3', 'a', { expiresAt: '2030-02-05T00:00:00.000Z' }) }]],
      ['an end date for an account (its credentials end with it)', [{ op: 'put', kind: 'account', record: account('a', '2030-06-01') }]],
      ['the end date cleared', [{ op: 'put', kind: 'account', record: account('b') }]],
      ['a deletion', [{ op: 'delete', kind: 'token', key: 'tok_4' }]],
      ['an account deleted with its credentials', [{ op: 'delete', kind: 'token', key: 'tok_2' }, { op: 'delete', kind: 'account', key: 'b' }]],
    ];
    let before = await series((m) => new CredentialExpiry(m, () => NOW).all(index));
    for (const [what, changes] of steps) {
      const touched = index.apply(changes);
      live.some(index, touched);
      const got = (await registry.getSingleMetricAsString('keygate_credential_expiry_timestamp_seconds')).split('\n').filter((l) => !l.startsWith('#') && l !== '').sort();
      const want = await series((m) => new CredentialExpiry(m, () => NOW).all(index));
      expect(got, what).toEqual(want);
      // Each step changed what is exported (so that equality above is not trivially true).
      expect(want, what).not.toEqual(before);
      before = want;
    }
    expect(before.some((l) => l.includes('credential="tok_3"') && l.includes('account="a"'))).toBe(true);
  });
});

describe('credential expiry series, bounded and following the clock', () => {
  const many = (n: number, expiresAt: (i: number) => string | null) => ({
    version: 1 as const,
    accounts: [account('a'), account('b', '2030-03-01')],
    tokens: Array.from({ length: n }, (_, i) => token(`tok_${i + 1}`, i % 2 ? 'a' : 'b', { expiresAt: expiresAt(i) })),
    certificates: [],
  });

  it('one series per credential only inside its window: 2,000 credentials far out give per-account series only', async () => {
    const index = LiveIndex.build(compiled, many(2_000, (i) => (i < 3 ? '2030-02-01T00:00:00.000Z' : i % 3 ? '2031-01-01T00:00:00.000Z' : null)));
    const got = await series((m) => new CredentialExpiry(m, () => NOW).all(index));
    // Three inside the window; per account its soonest end; b's end date.
    expect(got.filter((l) => l.includes('credential="tok_'))).toHaveLength(3);
    expect(got.filter((l) => l.includes('credential="soonest"'))).toHaveLength(2);
    expect(got.filter((l) => l.includes('credential="account"'))).toHaveLength(1);
    expect(got).toHaveLength(6);
  });

  it('a scrape after the clock passed a window boundary shows the new set, with no change to the index', async () => {
    let now = NOW;
    // tok_1 ends in 20 days (enters its window in 6), tok_2 ends in 2 days.
    const index = LiveIndex.build(compiled, {
      version: 1,
      accounts: [account('a')],
      tokens: [token('tok_1', 'a', { expiresAt: new Date(NOW + 20 * DAY).toISOString() }), token('tok_2', 'a', { expiresAt: new Date(NOW + 2 * DAY).toISOString() })],
      certificates: [],
    });
    const registry = new Registry();
    const live = new CredentialExpiry(new KeygateMetrics(registry), () => now);
    live.all(index);
    const scrape = async () => (await registry.getSingleMetricAsString('keygate_credential_expiry_timestamp_seconds')).split('\n').filter((l) => !l.startsWith('#') && l !== '');
    const ids = async () => (await scrape()).map((l) => /credential="([^"]+)"/.exec(l)![1]).sort();
    expect(await ids()).toEqual(['soonest', 'tok_2']);
    now += 3 * DAY; // tok_2 has ended; tok_1 not yet in its window
    expect(await ids()).toEqual(['soonest']);
    expect((await scrape())[0]).toContain(`${(NOW + 20 * DAY) / 1000}`);
    now += 4 * DAY; // tok_1 is 13 days from its end
    expect(await ids()).toEqual(['soonest', 'tok_1']);
    now += 14 * DAY; // everything has ended
    expect(await ids()).toEqual([]);
  });
});

// keygate_credential_expiry_timestamp_seconds kept in step with the index change by change
// (observe/inventory-metrics.ts CredentialExpiry.some) shows exactly the series a full export
// of the same index shows, after each kind of change: new, revoked, restored, moved and deleted
// credentials, an account's end date set and cleared, an account deleted with its credentials.
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
    const index = LiveIndex.build(compiled, { version: 1, accounts: [account('a'), account('b', '2031-06-30')], tokens: [token('tok_1', 'a'), token('tok_2', 'b', { expiresAt: '2031-01-01T00:00:00.000Z' }), token('tok_3', 'b')], certificates: [] });
    const registry = new Registry();
    const metrics = new KeygateMetrics(registry);
    const live = new CredentialExpiry(metrics);
    live.all(index);
    const steps: Array<[string, StoreChange[]]> = [
      ['a new token', [{ op: 'put', kind: 'token', record: token('tok_4', 'a', { expiresAt: '2030-02-01T00:00:00.000Z' }) }]],
      ['a revocation (its series goes)', [{ op: 'put', kind: 'token', record: token('tok_1', 'a', { status: 'revoked' }) }]],
      ['a restore (it comes back)', [{ op: 'put', kind: 'token', record: token('tok_1', 'a') }]],
      ['a token moved to another account', [{ op: 'put', kind: 'token', record: token('tok_3', 'a') }]],
      ['an end date for an account (its credentials end with it)', [{ op: 'put', kind: 'account', record: account('a', '2030-06-01') }]],
      ['the end date cleared', [{ op: 'put', kind: 'account', record: account('b') }]],
      ['a deletion', [{ op: 'delete', kind: 'token', key: 'tok_4' }]],
      ['an account deleted with its credentials', [{ op: 'delete', kind: 'token', key: 'tok_2' }, { op: 'delete', kind: 'account', key: 'b' }]],
    ];
    let before = await series((m) => new CredentialExpiry(m).all(index));
    for (const [what, changes] of steps) {
      const touched = index.apply(changes);
      live.some(index, touched);
      const got = (await registry.getSingleMetricAsString('keygate_credential_expiry_timestamp_seconds')).split('\n').filter((l) => !l.startsWith('#') && l !== '').sort();
      const want = await series((m) => new CredentialExpiry(m).all(index));
      expect(got, what).toEqual(want);
      // Each step changed what is exported (so that equality above is not trivially true).
      expect(want, what).not.toEqual(before);
      before = want;
    }
    expect(before.some((l) => l.includes('credential="tok_3"') && l.includes('account="a"'))).toBe(true);
  });
});

// Views of many records are built with one pass and one lookup table (store/views.ts): at
// 100,000 credentials a scan of every token per account took `keygate account list` 33 s.
// They must say exactly what the per-record views say.
import { describe, expect, it } from 'vitest';
import { accountView, accountViews, listTokens, tokenView } from '../../src/store/views.js';
import type { StoreData } from '../../src/store/types.js';

const AT = '2026-01-01T00:00:00.000Z';
const NOW = Date.parse('2026-06-01T00:00:00.000Z');
const config = { roles: { viewer: ['items:read'], editor: ['items:read', 'items:write'] } };

function data(): StoreData {
  const d: StoreData = { version: 1, accounts: [], tokens: [], certificates: [] };
  for (let i = 0; i < 30; i++) d.accounts.push({ name: `svc-${i}`, description: '', owner: '', endDate: i % 7 === 0 ? '2026-03-01' : null, roles: [i % 2 ? 'viewer' : 'editor'], scopes: i % 3 ? [] : ['reports:read'], policy: null, disabled: i % 5 === 0, createdAt: AT, updatedAt: AT });
  for (let i = 0; i < 400; i++) d.tokens.push({ id: `tok_${i}`, account: `svc-${(i * 7) % 31}`, label: '', hash: String(i).padStart(64, '0'), environment: null, scopes: i % 4 ? null : ['items:read'], policy: null, status: i % 9 ? 'active' : 'revoked', createdAt: AT, expiresAt: i % 5 ? null : '2026-04-01T00:00:00.000Z', revokedAt: null, revokeReason: null, rotatedFrom: null, rotatedTo: null });
  for (let i = 0; i < 60; i++) d.certificates.push({ id: `crt_${i}`, account: `svc-${i % 30}`, match: 'cn', value: `c${i}`, nickname: '', endDate: i % 4 ? null : '2026-02-01T00:00:00.000Z', scopes: null, policy: null, createdAt: AT, serial: null, notAfter: null });
  return d;
}

describe('batched views', () => {
  it('accountViews counts what accountView counts, account by account', () => {
    const d = data();
    expect(accountViews(d, NOW)).toEqual(d.accounts.map((a) => accountView(a, d, NOW)));
  });

  it('listTokens (one lookup table) gives each token the view tokenView gives it alone', () => {
    const d = data();
    expect(listTokens(d, {}, {}, config, NOW)).toEqual(d.tokens.map((t) => tokenView(t, d, {}, config, NOW)));
  });
});

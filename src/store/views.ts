// What the CLI prints and the admin API returns: one shape for both, built from the records
// and the batched last-use times. A view never carries a hash, let alone a secret.
import type { KeygateConfig } from '../config/schema.js';
import { endOfDayMs } from '../config/dates.js';
import { parseDuration } from '../config/units.js';
import { accountScopes } from './check.js';
import { bindingStatus, OperationError, tokenStatus } from './operations.js';
import type { AccountRecord, CertBindingRecord, StoreData, TokenRecord, UsageMap } from './types.js';

const invalid = (m: string) => new OperationError('invalid', m);

export type TokenStatusName = ReturnType<typeof tokenStatus>;
export const TOKEN_STATUSES: readonly TokenStatusName[] = ['active', 'revoked', 'expired'];

const isoOrNull = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** End of an account's last day (config/dates.ts endOfDayMs), epoch ms, or null. */
export function accountEndMs(a: AccountRecord): number | null {
  return a.endDate === null ? null : endOfDayMs(a.endDate);
}

export function accountStatus(a: AccountRecord, nowMs: number): 'active' | 'disabled' | 'ended' {
  if (a.disabled) return 'disabled';
  const end = accountEndMs(a);
  return end !== null && end <= nowMs ? 'ended' : 'active';
}

/** The earlier of a credential's own end and its account's end date, as ISO, or null. */
function effectiveEnd(own: string | null, account: AccountRecord | undefined): string | null {
  const ends = [own === null ? null : Date.parse(own), account ? accountEndMs(account) : null].filter((x): x is number => x !== null);
  return ends.length ? new Date(Math.min(...ends)).toISOString() : null;
}

export interface TokenView {
  id: string;
  account: string;
  label: string;
  status: TokenStatusName;
  /** Effective scopes: the token's own, else its account's. */
  scopes: string[];
  /** True when the token has scopes of its own (a subset of the account's). */
  ownScopes: boolean;
  policy: string | null;
  createdAt: string;
  expiresAt: string | null;
  /** When it stops working: the earlier of expiresAt and the account's end date. */
  endsAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  revokeReason: string | null;
  rotatedFrom: string | null;
  rotatedTo: string | null;
}

export const TOKEN_COLUMNS: readonly (keyof TokenView)[] = ['id', 'account', 'label', 'status', 'scopes', 'policy', 'createdAt', 'expiresAt', 'endsAt', 'lastUsedAt', 'revokedAt', 'revokeReason', 'rotatedFrom', 'rotatedTo'];

/**
 * What views of many tokens share: accounts by name and each account's sorted scopes, built
 * once per list (a lookup per token in a list of 80,000 would be a scan of 10,000 accounts).
 */
export interface ViewLookups {
  account(name: string): AccountRecord | undefined;
  scopesOf(account: AccountRecord): string[];
}

export function viewLookups(data: StoreData, config: Pick<KeygateConfig, 'roles'>): ViewLookups {
  const byName = new Map(data.accounts.map((a) => [a.name, a]));
  const scopes = new Map<AccountRecord, string[]>();
  return {
    account: (name) => byName.get(name),
    scopesOf: (a) => {
      let s = scopes.get(a);
      if (!s) scopes.set(a, (s = [...accountScopes(a, config)].sort()));
      return s;
    },
  };
}

export function tokenView(t: TokenRecord, data: StoreData, usage: UsageMap, config: Pick<KeygateConfig, 'roles'>, nowMs: number, lookups?: ViewLookups): TokenView {
  const account = lookups ? lookups.account(t.account) : data.accounts.find((a) => a.name === t.account);
  return {
    id: t.id,
    account: t.account,
    label: t.label,
    status: tokenStatus(t, nowMs),
    scopes: t.scopes !== null ? [...t.scopes] : account ? (lookups ? [...lookups.scopesOf(account)] : [...accountScopes(account, config)].sort()) : [],
    ownScopes: t.scopes !== null,
    policy: t.policy,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    endsAt: effectiveEnd(t.expiresAt, account),
    lastUsedAt: isoOrNull(usage[t.id]),
    revokedAt: t.revokedAt,
    revokeReason: t.revokeReason,
    rotatedFrom: t.rotatedFrom,
    rotatedTo: t.rotatedTo,
  };
}

export interface TokenFilter {
  account?: string;
  status?: TokenStatusName;
  /** Only active tokens that stop working (own expiry or account end) within this many ms. */
  expiringWithinMs?: number;
}

/** Reads the inventory filters as typed by a user (CLI flags, admin API query). */
export function parseTokenFilter(raw: { account?: string; status?: string; expiring?: string }): TokenFilter {
  const filter: TokenFilter = {};
  if (raw.account !== undefined) filter.account = raw.account;
  if (raw.status !== undefined) {
    if (!(TOKEN_STATUSES as readonly string[]).includes(raw.status)) throw invalid(`unknown status "${raw.status}": use active, revoked or expired`);
    filter.status = raw.status as TokenStatusName;
  }
  if (raw.expiring !== undefined) {
    const ms = parseDuration(raw.expiring);
    if (ms === undefined) throw invalid(`invalid expiring "${raw.expiring}": use a duration such as 14d`);
    filter.expiringWithinMs = ms;
  }
  return filter;
}

export function listTokens(data: StoreData, usage: UsageMap, filter: TokenFilter, config: Pick<KeygateConfig, 'roles'>, nowMs: number): TokenView[] {
  const lookups = viewLookups(data, config);
  return data.tokens
    .filter((t) => filter.account === undefined || t.account === filter.account)
    .map((t) => tokenView(t, data, usage, config, nowMs, lookups))
    .filter((v) => filter.status === undefined || v.status === filter.status)
    .filter((v) => filter.expiringWithinMs === undefined || (v.status === 'active' && v.endsAt !== null && Date.parse(v.endsAt) - nowMs <= filter.expiringWithinMs));
}

export function accountView(a: AccountRecord, data: StoreData, nowMs: number, counts?: ReadonlyMap<string, { tokens: number; certificates: number }>) {
  const counted = counts?.get(a.name);
  return {
    name: a.name,
    description: a.description,
    owner: a.owner,
    endDate: a.endDate,
    roles: a.roles,
    scopes: a.scopes,
    policy: a.policy,
    disabled: a.disabled,
    status: accountStatus(a, nowMs),
    activeTokens: counts ? (counted?.tokens ?? 0) : data.tokens.filter((t) => t.account === a.name && tokenStatus(t, nowMs) === 'active').length,
    certificates: counts ? (counted?.certificates ?? 0) : data.certificates.filter((c) => c.account === a.name && bindingStatus(c, nowMs) === 'active').length,
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
  };
}

export type AccountView = ReturnType<typeof accountView>;

/** Every account's view, the live credentials counted in one pass over them. */
export function accountViews(data: StoreData, nowMs: number): AccountView[] {
  const counts = new Map<string, { tokens: number; certificates: number }>();
  const of = (name: string) => {
    let c = counts.get(name);
    if (!c) counts.set(name, (c = { tokens: 0, certificates: 0 }));
    return c;
  };
  for (const t of data.tokens) if (tokenStatus(t, nowMs) === 'active') of(t.account).tokens++;
  for (const c of data.certificates) if (bindingStatus(c, nowMs) === 'active') of(c.account).certificates++;
  return data.accounts.map((a) => accountView(a, data, nowMs, counts));
}

export const ACCOUNT_COLUMNS: readonly (keyof AccountView)[] = ['name', 'status', 'owner', 'roles', 'scopes', 'policy', 'endDate', 'activeTokens', 'certificates', 'description'];

export function bindingView(c: CertBindingRecord, usage: UsageMap, nowMs: number) {
  return {
    id: c.id,
    account: c.account,
    nickname: c.nickname,
    match: c.match,
    value: c.value,
    status: bindingStatus(c, nowMs),
    scopes: c.scopes,
    policy: c.policy,
    createdAt: c.createdAt,
    endDate: c.endDate,
    serial: c.serial,
    notAfter: c.notAfter,
    lastUsedAt: isoOrNull(usage[c.id]),
  };
}

export type BindingView = ReturnType<typeof bindingView>;

/** An account with its effective scopes, its tokens and its certificate bindings. */
export function accountDetail(a: AccountRecord, data: StoreData, usage: UsageMap, config: Pick<KeygateConfig, 'roles'>, nowMs: number) {
  return {
    ...accountView(a, data, nowMs),
    effectiveScopes: [...accountScopes(a, config)].sort(),
    tokens: data.tokens.filter((t) => t.account === a.name).map((t) => tokenView(t, data, usage, config, nowMs, { account: (n) => (n === a.name ? a : undefined), scopesOf: (x) => [...accountScopes(x, config)].sort() })),
    bindings: data.certificates.filter((c) => c.account === a.name).map((c) => bindingView(c, usage, nowMs)),
  };
}

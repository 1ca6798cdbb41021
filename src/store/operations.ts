// Lifecycle operations on credential data: one implementation shared by the CLI and the admin
// API. Each runs inside CredentialStore.update (read, change, atomic write) and validates its
// input against keygate.yaml, so nothing the running proxy would refuse is ever written.
import type { KeygateConfig } from '../config/schema.js';
import { KeygateFault } from '../errors/fault.js';
import { isDay, parseWhen } from '../config/dates.js';
import { BUILTIN_SCOPES } from '../config/builtin-scopes.js';
import { accountScopes } from './check.js';
import { ACCOUNT_NAME } from './schema.js';
import { hashToken, mintToken, newId } from './token-format.js';
import type { AccountRecord, CertBindingRecord, StoreData, TokenRecord } from './types.js';

export type OperationErrorKind = 'invalid' | 'not_found' | 'conflict';

const CODE_OF_KIND = { invalid: 'KG_ERR_BAD_REQUEST', not_found: 'KG_ERR_NOT_FOUND', conflict: 'KG_ERR_CONFLICT' } as const;

/** A lifecycle operation refused its input: invalid, not found, or in conflict with the state. */
export class OperationError extends KeygateFault {
  constructor(
    readonly kind: OperationErrorKind,
    message: string,
  ) {
    super(CODE_OF_KIND[kind], message);
  }
}

export interface OpContext {
  config: Pick<KeygateConfig, 'roles' | 'scopes' | 'policies' | 'environment'>;
  now: Date;
}

const invalid = (m: string) => new OperationError('invalid', m);
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function tokenStatus(t: TokenRecord, nowMs: number): 'active' | 'revoked' | 'expired' {
  if (t.status === 'revoked') return 'revoked';
  if (t.expiresAt !== null && Date.parse(t.expiresAt) <= nowMs) return 'expired';
  return 'active';
}

export function bindingStatus(c: CertBindingRecord, nowMs: number): 'active' | 'expired' {
  const ends = [c.endDate, c.notAfter].filter((x): x is string => x !== null).map(Date.parse);
  return ends.some((t) => t <= nowMs) ? 'expired' : 'active';
}

/**
 * "30d" (from now), "2027-01-31" (the end of that day, config/dates.ts) or an ISO date-time.
 * Must exist and be in the future; the refusal quotes the input.
 */
export function parseExpiry(text: string, now: Date): string {
  const r = parseWhen(text, now.getTime(), 'expiry');
  if (!r.ok) throw invalid(r.message);
  if (r.ms <= now.getTime()) throw invalid(`expiry "${text}" is in the past`);
  return new Date(r.ms).toISOString();
}

/** An optional expiry as the CLI and the admin API take it: absent, null or "never" is no end. */
export function parseOptionalExpiry(text: string | null | undefined, now: Date): string | null {
  if (text === undefined || text === null || text === 'never') return null;
  return parseExpiry(text, now);
}

function checkDay(day: string): string {
  if (!isDay(day)) throw invalid(`invalid end date "${day}": use YYYY-MM-DD, a day that exists`);
  return day;
}

function checkScopes(scopes: string[], ctx: OpContext): string[] {
  for (const s of scopes) if (!(s in ctx.config.scopes) && !BUILTIN_SCOPES.has(s)) throw invalid(`unknown scope "${s}" (defined scopes: ${Object.keys(ctx.config.scopes).join(', ') || 'none'})`);
  return [...new Set(scopes)];
}

function checkRoles(roles: string[], ctx: OpContext): string[] {
  for (const r of roles) if (!(r in ctx.config.roles)) throw invalid(`unknown role "${r}" (defined roles: ${Object.keys(ctx.config.roles).join(', ') || 'none'})`);
  return [...new Set(roles)];
}

function checkPolicy(p: string | null | undefined, ctx: OpContext): string | null {
  if (p === null || p === undefined) return null;
  if (!(p in ctx.config.policies)) throw invalid(`unknown policy "${p}" (defined policies: ${Object.keys(ctx.config.policies).join(', ') || 'none'})`);
  return p;
}

function checkText(what: string, v: string | undefined, max: number): string {
  const s = v ?? '';
  if (s.length > max) throw invalid(`${what} is longer than ${max} characters`);
  if (/[\u0000-\u001f\u007f]/.test(s)) throw invalid(`${what} contains control characters`);
  return s;
}

/**
 * A lookup a store may attach to the data it hands CredentialStore.update (the Redis store's
 * draft does, store/draft.ts): finding one record among 100,000 is then a map lookup, not
 * a scan that, through a copy-on-write draft, costs tens of milliseconds. Only a hint: what it
 * names is taken only if it still carries that key and is still in the list (keys are unique),
 * so a list the mutation changed is searched as before.
 */
export const RECORD_LOOKUP: unique symbol = Symbol('keygate.recordLookup');

export interface RecordLookup {
  account(name: string): AccountRecord | undefined;
  token(id: string): TokenRecord | undefined;
}

function lookup(data: StoreData): RecordLookup | undefined {
  return (data as StoreData & { [RECORD_LOOKUP]?: RecordLookup })[RECORD_LOOKUP];
}

/** The hinted record if it is the one (its key, in the list; includes compares identities, no field is read). */
function hinted<R>(list: readonly R[], hit: R | undefined, matches: (r: R) => boolean): R | undefined {
  return hit !== undefined && matches(hit) && list.includes(hit) ? hit : undefined;
}

export function findAccount(data: StoreData, name: string): AccountRecord {
  const is = (x: AccountRecord) => x.name === name;
  const a = hinted(data.accounts, lookup(data)?.account(name), is) ?? data.accounts.find(is);
  if (!a) throw new OperationError('not_found', `no account named "${name}"`);
  return a;
}

export function findToken(data: StoreData, id: string): TokenRecord {
  const is = (x: TokenRecord) => x.id === id;
  const t = hinted(data.tokens, lookup(data)?.token(id), is) ?? data.tokens.find(is);
  if (!t) throw new OperationError('not_found', `no token with id "${id}"`);
  return t;
}

// ---- accounts -------------------------------------------------------------------------------

export interface AccountInput {
  name: string;
  description?: string;
  owner?: string;
  endDate?: string | null;
  roles?: string[];
  scopes?: string[];
  policy?: string | null;
}

export function createAccount(data: StoreData, input: AccountInput, ctx: OpContext): AccountRecord {
  const name = input.name;
  if (!ACCOUNT_NAME.test(name) || name.trim() !== name) throw invalid(`invalid account name "${name}": letters, digits, spaces, - and _ (1 to 64, no leading or trailing space)`);
  if (data.accounts.some((a) => a.name.toLowerCase() === name.toLowerCase())) throw new OperationError('conflict', `an account named "${name}" already exists`);
  const owner = checkText('owner', input.owner, 254);
  if (owner && !EMAIL.test(owner)) throw invalid(`owner "${owner}" is not an e-mail address`);
  const at = ctx.now.toISOString();
  const account: AccountRecord = {
    name,
    description: checkText('description', input.description, 1024),
    owner,
    endDate: input.endDate ? checkDay(input.endDate) : null,
    roles: checkRoles(input.roles ?? [], ctx),
    scopes: checkScopes(input.scopes ?? [], ctx),
    policy: checkPolicy(input.policy, ctx),
    disabled: false,
    createdAt: at,
    updatedAt: at,
  };
  data.accounts.push(account);
  return account;
}

export interface AccountPatch {
  description?: string;
  owner?: string;
  endDate?: string | null;
  roles?: string[];
  scopes?: string[];
  policy?: string | null;
  disabled?: boolean;
}

export function updateAccount(data: StoreData, name: string, patch: AccountPatch, ctx: OpContext): AccountRecord {
  const a = findAccount(data, name);
  if (patch.description !== undefined) a.description = checkText('description', patch.description, 1024);
  if (patch.owner !== undefined) {
    const owner = checkText('owner', patch.owner, 254);
    if (owner && !EMAIL.test(owner)) throw invalid(`owner "${owner}" is not an e-mail address`);
    a.owner = owner;
  }
  if (patch.endDate !== undefined) a.endDate = patch.endDate === null ? null : checkDay(patch.endDate);
  if (patch.roles !== undefined) a.roles = checkRoles(patch.roles, ctx);
  if (patch.scopes !== undefined) a.scopes = checkScopes(patch.scopes, ctx);
  if (patch.policy !== undefined) a.policy = checkPolicy(patch.policy, ctx);
  if (patch.disabled !== undefined) a.disabled = patch.disabled;
  // Credentials with their own scopes must stay within the account's.
  const allowed = accountScopes(a, ctx.config);
  for (const c of [...data.tokens, ...data.certificates]) {
    if (c.account !== a.name || !c.scopes) continue;
    const outside = c.scopes.filter((s) => !allowed.has(s));
    // Revoking is not enough: a revoked record still names its scopes, and a restore
    // would bring them back, so the record itself has to go.
    if (outside.length) throw new OperationError('conflict', `${c.id} has scope(s) ${outside.join(', ')} the account would no longer have; delete that credential first`);
  }
  a.updatedAt = ctx.now.toISOString();
  return a;
}

export function deleteAccount(data: StoreData, name: string, force: boolean, ctx: OpContext): { account: AccountRecord; tokens: string[]; certificates: string[] } {
  const a = findAccount(data, name);
  const nowMs = ctx.now.getTime();
  const tokens = data.tokens.filter((t) => t.account === name);
  const certs = data.certificates.filter((c) => c.account === name);
  const live = [...tokens.filter((t) => tokenStatus(t, nowMs) === 'active').map((t) => t.id), ...certs.filter((c) => bindingStatus(c, nowMs) === 'active').map((c) => c.id)];
  if (live.length && !force) throw new OperationError('conflict', `account "${name}" still holds ${live.length} active credential(s) (${live.slice(0, 5).join(', ')}${live.length > 5 ? ', …' : ''}); revoke them first or use --force`);
  data.accounts = data.accounts.filter((x) => x !== a);
  data.tokens = data.tokens.filter((t) => t.account !== name);
  data.certificates = data.certificates.filter((c) => c.account !== name);
  return { account: a, tokens: tokens.map((t) => t.id), certificates: certs.map((c) => c.id) };
}

// ---- tokens ---------------------------------------------------------------------------------

export interface TokenInput {
  account: string;
  label?: string;
  scopes?: string[] | null;
  /** Already parsed (parseExpiry) ISO time, or null. */
  expiresAt?: string | null;
  policy?: string | null;
}

function checkTokenScopes(account: AccountRecord, scopes: string[] | null | undefined, ctx: OpContext): string[] | null {
  if (scopes === null || scopes === undefined || scopes.length === 0) return null;
  const own = checkScopes(scopes, ctx);
  const allowed = accountScopes(account, ctx.config);
  const outside = own.filter((s) => !allowed.has(s));
  if (outside.length) {
    throw invalid(`a token's scopes must be a subset of its account's: account "${account.name}" does not have ${outside.join(', ')} (it has: ${[...allowed].sort().join(', ') || 'none'})`);
  }
  return own;
}

export function createToken(data: StoreData, input: TokenInput, ctx: OpContext): { record: TokenRecord; secret: string } {
  const account = findAccount(data, input.account);
  const secret = mintToken(ctx.config.environment);
  const record: TokenRecord = {
    id: newId('tok'),
    account: account.name,
    label: checkText('label', input.label, 128),
    hash: hashToken(secret),
    environment: ctx.config.environment,
    scopes: checkTokenScopes(account, input.scopes, ctx),
    policy: checkPolicy(input.policy, ctx),
    status: 'active',
    createdAt: ctx.now.toISOString(),
    expiresAt: input.expiresAt ?? null,
    revokedAt: null,
    revokeReason: null,
    rotatedFrom: null,
    rotatedTo: null,
  };
  data.tokens.push(record);
  return { record, secret };
}

export function revokeToken(data: StoreData, id: string, reason: string | undefined, ctx: OpContext): TokenRecord {
  const t = findToken(data, id);
  if (t.status === 'revoked') throw new OperationError('conflict', `token ${id} is already revoked (at ${t.revokedAt})`);
  t.status = 'revoked';
  t.revokedAt = ctx.now.toISOString();
  t.revokeReason = checkText('reason', reason, 512) || null;
  return t;
}

export function restoreToken(data: StoreData, id: string, ctx: OpContext): TokenRecord {
  const t = findToken(data, id);
  if (t.status !== 'revoked') throw new OperationError('conflict', `token ${id} is not revoked`);
  if (t.expiresAt !== null && Date.parse(t.expiresAt) <= ctx.now.getTime()) throw new OperationError('conflict', `token ${id} expired at ${t.expiresAt}; an expired token cannot be restored — create or rotate instead`);
  t.status = 'active';
  t.revokedAt = null;
  t.revokeReason = null;
  return t;
}

/**
 * A new token with the same account, label, scopes and policy; the old one keeps working
 * until the overlap ends (or its own earlier expiry), then expires. Both stay listed, linked.
 */
export function rotateToken(data: StoreData, id: string, overlapMs: number, ctx: OpContext, expiresAt?: string | null): { old: TokenRecord; record: TokenRecord; secret: string } {
  const old = findToken(data, id);
  if (old.rotatedTo !== null) throw new OperationError('conflict', `token ${id} was already rotated (to ${old.rotatedTo})`);
  if (!(overlapMs >= 0)) throw invalid('overlap must be a duration such as 24h');
  const nowMs = ctx.now.getTime();
  const lifetime = old.expiresAt !== null ? Date.parse(old.expiresAt) - Date.parse(old.createdAt) : null;
  const { record, secret } = createToken(
    data,
    {
      account: old.account,
      label: old.label,
      scopes: old.scopes,
      policy: old.policy,
      expiresAt: expiresAt !== undefined ? expiresAt : lifetime !== null ? new Date(nowMs + lifetime).toISOString() : null,
    },
    ctx,
  );
  record.rotatedFrom = old.id;
  old.rotatedTo = record.id;
  const overlapEnd = nowMs + overlapMs;
  if (old.expiresAt === null || Date.parse(old.expiresAt) > overlapEnd) old.expiresAt = new Date(overlapEnd).toISOString();
  return { old, record, secret };
}

export function deleteToken(data: StoreData, id: string): TokenRecord {
  const t = findToken(data, id);
  data.tokens = data.tokens.filter((x) => x !== t);
  for (const o of data.tokens) {
    if (o.rotatedFrom === id) o.rotatedFrom = null;
    if (o.rotatedTo === id) o.rotatedTo = null;
  }
  return t;
}

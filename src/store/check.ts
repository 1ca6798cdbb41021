// Cross-checks of the credential data against keygate.yaml and against itself: every name a
// record uses exists, ids and hashes are unique, token scopes are a subset of the account's.
// Used by `keygate check`, by a running proxy before it accepts a changed file, and by the
// CLI before it writes.
import type { KeygateConfig } from '../config/schema.js';
import { BUILTIN_SCOPES } from '../config/builtin-scopes.js';
import type { AccountRecord, CertBindingRecord, DataProblem, StoreChange, StoreData, TokenRecord } from './types.js';
import { uriPatternProblem } from '../matching/uri-pattern.js';

export type { DataProblem };

export function accountScopes(account: { roles: string[]; scopes: string[] }, config: Pick<KeygateConfig, 'roles'>): Set<string> {
  const out = new Set(account.scopes);
  for (const role of account.roles) for (const s of config.roles[role] ?? []) out.add(s);
  return out;
}

export function checkStoreData(data: StoreData, config: Pick<KeygateConfig, 'roles' | 'scopes' | 'policies' | 'environment'>): DataProblem[] {
  const problems: DataProblem[] = [];
  const scopeExists = (s: string) => s in config.scopes || BUILTIN_SCOPES.has(s);
  const accounts = new Map<string, StoreData['accounts'][number]>();
  const lowerNames = new Set<string>();
  data.accounts.forEach((a, i) => {
    // Unique regardless of case: "CI Deployer" and "ci deployer" would be told apart by no one.
    const key = a.name.toLowerCase();
    if (lowerNames.has(key)) problems.push({ path: ['accounts', i, 'name'], message: `duplicate account name "${a.name}"` });
    lowerNames.add(key);
    accounts.set(a.name, a);
    a.roles.forEach((r, j) => { if (!(r in config.roles)) problems.push({ path: ['accounts', i, 'roles', j], message: `account "${a.name}": unknown role "${r}"` }); });
    a.scopes.forEach((s, j) => { if (!scopeExists(s)) problems.push({ path: ['accounts', i, 'scopes', j], message: `account "${a.name}": unknown scope "${s}"` }); });
    if (a.policy !== null && !(a.policy in config.policies)) problems.push({ path: ['accounts', i, 'policy'], message: `account "${a.name}": unknown policy "${a.policy}"` });
  });
  const ids = new Set<string>();
  const hashes = new Set<string>();
  const credential = (kind: 'tokens' | 'certificates', i: number, r: { id: string; account: string; scopes: string[] | null; policy: string | null }) => {
    if (ids.has(r.id)) problems.push({ path: [kind, i, 'id'], message: `duplicate credential id "${r.id}"` });
    ids.add(r.id);
    const acct = accounts.get(r.account);
    if (!acct) {
      problems.push({ path: [kind, i, 'account'], message: `${r.id}: unknown account "${r.account}"` });
      return;
    }
    if (r.policy !== null && !(r.policy in config.policies)) problems.push({ path: [kind, i, 'policy'], message: `${r.id}: unknown policy "${r.policy}"` });
    if (r.scopes) {
      const allowed = accountScopes(acct, config);
      r.scopes.forEach((s, j) => {
        if (!scopeExists(s)) problems.push({ path: [kind, i, 'scopes', j], message: `${r.id}: unknown scope "${s}"` });
        else if (!allowed.has(s)) problems.push({ path: [kind, i, 'scopes', j], message: `${r.id}: scope "${s}" is not one of account "${acct.name}"'s scopes` });
      });
    }
  };
  data.tokens.forEach((t, i) => {
    credential('tokens', i, t);
    if (hashes.has(t.hash)) problems.push({ path: ['tokens', i, 'hash'], message: `${t.id}: duplicate token hash` });
    hashes.add(t.hash);
  });
  const bindings = new Set<string>();
  data.certificates.forEach((c, i) => {
    credential('certificates', i, c);
    const key = `${c.match}:${c.value}`;
    if (bindings.has(key)) problems.push({ path: ['certificates', i, 'value'], message: `${c.id}: the ${c.match} "${c.value}" is bound twice` });
    bindings.add(key);
    if (c.match === 'fingerprint' && !/^[0-9a-f]{64}$/.test(c.value)) problems.push({ path: ['certificates', i, 'value'], message: `${c.id}: a fingerprint is 64 lowercase hex characters` });
    const uriProblem = c.match === 'uri' && c.value.includes('*') ? uriPatternProblem(c.value) : undefined;
    if (uriProblem) problems.push({ path: ['certificates', i, 'value'], message: `${c.id}: ${uriProblem}` });
  });
  return problems;
}

/**
 * What changesPass needs to know about the version the changes start from — one that passed
 * checkStoreData against the same config. The credential index implements it.
 */
export interface CheckedState {
  account(name: string): AccountRecord | undefined;
  token(id: string): TokenRecord | undefined;
  certificate(id: string): CertBindingRecord | undefined;
  /** The id of the token with this hash. */
  tokenWithHash(hash: string): string | undefined;
  /** The name of the account whose lowercased name this is. */
  accountNamedLike(lowerName: string): string | undefined;
  /** The id of the binding of `${match}:${value}`. */
  bindingOf(key: string): string | undefined;
  /** The ids of an account's tokens and bindings. */
  credentialIdsOf(account: string): Iterable<string>;
}

const bindingKey = (c: Pick<CertBindingRecord, 'match' | 'value'>) => `${c.match}:${c.value}`;

/**
 * True when the version `changes` lead to from `state` passes checkStoreData, found by looking
 * only at the changed records and at what they touch (the account a credential names, the
 * credentials of a changed or deleted account, the other holders of a name, id, hash or
 * binding): the cost is proportional to the change, not to the inventory. False means "not
 * shown to pass": the caller runs checkStoreData on the whole version, which positions the
 * problems. It never answers true for a version checkStoreData would refuse (a unit test
 * compares the two on random changes).
 */
export function changesPass(state: CheckedState, changes: readonly StoreChange[], config: Pick<KeygateConfig, 'roles' | 'scopes' | 'policies' | 'environment'>): boolean {
  // The version after the changes, as the records they wrote over the state (null = deleted).
  const accounts = new Map<string, AccountRecord | null>();
  const tokens = new Map<string, TokenRecord | null>();
  const certs = new Map<string, CertBindingRecord | null>();
  for (const c of changes) {
    if (c.kind === 'account') accounts.set(c.op === 'put' ? c.record.name : c.key, c.op === 'put' ? c.record : null);
    else if (c.kind === 'token') tokens.set(c.op === 'put' ? c.record.id : c.key, c.op === 'put' ? c.record : null);
    else certs.set(c.op === 'put' ? c.record.id : c.key, c.op === 'put' ? c.record : null);
  }
  const accountAfter = (name: string) => (accounts.has(name) ? (accounts.get(name) ?? undefined) : state.account(name));
  const tokenAfter = (id: string) => (tokens.has(id) ? (tokens.get(id) ?? undefined) : state.token(id));
  const certAfter = (id: string) => (certs.has(id) ? (certs.get(id) ?? undefined) : state.certificate(id));
  const scopeExists = (s: string) => s in config.scopes || BUILTIN_SCOPES.has(s);
  const credentialPasses = (r: { id: string; account: string; scopes: string[] | null; policy: string | null }) => {
    const acct = accountAfter(r.account);
    if (!acct) return false;
    if (r.policy !== null && !(r.policy in config.policies)) return false;
    if (!r.scopes) return true;
    const allowed = accountScopes(acct, config);
    return r.scopes.every((s) => scopeExists(s) && allowed.has(s));
  };
  /** The credentials of an account in the version after the changes. */
  const credentialsAfter = function* (name: string) {
    for (const id of state.credentialIdsOf(name)) {
      const r = tokenAfter(id) ?? certAfter(id);
      if (r && r.account === name) yield r;
    }
  };

  const lowerNames = new Map<string, string>();
  for (const [name, a] of accounts) {
    if (a === null) {
      // Deleting an account that still has credentials leaves them pointing nowhere; a
      // credential put that names it is caught below.
      if (!credentialsAfter(name).next().done) return false;
      continue;
    }
    if (!a.roles.every((r) => r in config.roles) || !a.scopes.every(scopeExists)) return false;
    if (a.policy !== null && !(a.policy in config.policies)) return false;
    const lower = a.name.toLowerCase();
    const holder = state.accountNamedLike(lower);
    if (holder !== undefined && holder !== a.name && accountAfter(holder) !== undefined) return false;
    if (lowerNames.has(lower)) return false;
    lowerNames.set(lower, a.name);
    // Fewer scopes for the account may leave a credential's own scopes outside them.
    const before = state.account(a.name);
    const same = before !== undefined && sameList(before.roles, a.roles) && sameList(before.scopes, a.scopes);
    if (!same) for (const r of credentialsAfter(a.name)) if (!credentialPasses(r)) return false;
  }

  const hashes = new Map<string, string>();
  for (const [id, t] of tokens) {
    if (t === null) continue;
    if (!credentialPasses(t) || certAfter(id) !== undefined) return false;
    const holder = state.tokenWithHash(t.hash);
    if (holder !== undefined && holder !== id && tokenAfter(holder)?.hash === t.hash) return false;
    if (hashes.has(t.hash)) return false;
    hashes.set(t.hash, id);
  }

  const keys = new Map<string, string>();
  for (const [id, c] of certs) {
    if (c === null) continue;
    if (!credentialPasses(c) || tokenAfter(id) !== undefined) return false;
    const key = bindingKey(c);
    const holder = state.bindingOf(key);
    if (holder !== undefined && holder !== id) {
      const other = certAfter(holder);
      if (other && bindingKey(other) === key) return false;
    }
    if (keys.has(key)) return false;
    keys.set(key, id);
    if (c.match === 'fingerprint' && !/^[0-9a-f]{64}$/.test(c.value)) return false;
    if (c.match === 'uri' && c.value.includes('*') && uriPatternProblem(c.value)) return false;
  }
  return true;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

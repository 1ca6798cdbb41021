// Cross-checks of the credential data against keygate.yaml and against itself: every name a
// record uses exists, ids and hashes are unique, token scopes are a subset of the account's.
// Used by `keygate check`, by a running proxy before it accepts a changed file, and by the
// CLI before it writes.
import type { KeygateConfig } from '../config/schema.js';
import { BUILTIN_SCOPES } from '../config/builtin-scopes.js';
import type { DataProblem, StoreData } from './types.js';
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

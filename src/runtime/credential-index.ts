// The credential index: the inventory arranged so that identifying a caller is one map lookup,
// each entry already holding everything later stages need (the account, the compiled grant,
// the resolved rate policy and bucket key, expiry and warning times). It is built once per
// compiled config and then changed in place, change by change: the cost of a revocation is
// proportional to what it changes (one token), not to the size of the inventory. An entry is
// never mutated, only replaced, so a request that already holds one keeps a consistent view.
import { endOfDayMs } from '../config/dates.js';
import { compareSpecificity } from '../matching/wildcard.js';
import { compileUriPattern } from '../matching/uri-pattern.js';
import { accountScopes, type CheckedState } from '../store/check.js';
import type { AccountRecord, CertBindingRecord, StoreChange, StoreData, TokenRecord } from '../store/types.js';
import type { AccountEntry, CredentialIndex, Principal, UriPatternEntry } from '../vocabulary/principal.js';
import type { CompiledConfig } from './compile.js';


/**
 * RFC 3339 without milliseconds, as one flat string: the regular expression's replace gave a
 * concatenation of a slice of the ISO string, three objects kept per credential (~6 MB at
 * 100,000 credentials, against ~2 MB flat).
 */
function endsHeader(ms: number): string {
  const iso = new Date(ms).toISOString();
  const dot = iso.lastIndexOf('.');
  return Buffer.from(dot < 0 ? iso : `${iso.slice(0, dot)}Z`, 'latin1').toString('latin1');
}

function minOrNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** What one apply() touched: the accounts changed and every credential whose entry was rebuilt or removed. */
export interface Touched {
  accounts: Set<string>;
  credentials: Set<string>;
}

export class LiveIndex implements CredentialIndex, CheckedState {
  readonly tokensByHash = new Map<string, Principal>();
  readonly byId = new Map<string, Principal>();
  readonly accounts = new Map<string, AccountEntry>();
  readonly certByFingerprint = new Map<string, Principal>();
  readonly certByCN = new Map<string, Principal>();
  readonly certByDNS = new Map<string, Principal>();
  readonly certByURI = new Map<string, Principal>();
  certURIPatterns: UriPatternEntry[] = [];

  private readonly accountRecords = new Map<string, AccountRecord>();
  private readonly tokenRecords = new Map<string, TokenRecord>();
  private readonly certRecords = new Map<string, CertBindingRecord>();
  /** Credential ids by account: what an account change has to re-resolve. */
  private readonly credentialsOf = new Map<string, Set<string>>();
  /** For the cross-checks of a change (store/check.ts changesPass): names by lowercased name, bindings by match:value. */
  private readonly lowerNames = new Map<string, string>();
  private readonly bindingKeys = new Map<string, string>();
  /** Filled while apply() runs. */
  private touched: Touched | undefined;
  private snapshotCache: StoreData | undefined;

  private constructor(private readonly compiled: CompiledConfig) {}

  /** The index of `data` (already checked against the config). */
  static build(compiled: CompiledConfig, data: StoreData): LiveIndex {
    const index = new LiveIndex(compiled);
    const changes: StoreChange[] = [];
    for (const record of data.accounts) changes.push({ op: 'put', kind: 'account', record });
    for (const record of data.tokens) changes.push({ op: 'put', kind: 'token', record });
    for (const record of data.certificates) changes.push({ op: 'put', kind: 'certificate', record });
    index.apply(changes);
    return index;
  }

  get size(): { accounts: number; tokens: number; certificates: number } {
    return { accounts: this.accountRecords.size, tokens: this.tokenRecords.size, certificates: this.certRecords.size };
  }

  /**
   * Applies changes in order (accounts before the credentials that name them, as diffStoreData
   * orders them); returns what it touched, for what is kept per credential elsewhere (metrics).
   */
  apply(changes: readonly StoreChange[]): Touched {
    const touched: Touched = (this.touched = { accounts: new Set(), credentials: new Set() });
    if (changes.length === 0) return touched;
    this.snapshotCache = undefined;
    let patterns = false;
    for (const c of changes) {
      if (c.kind === 'account') {
        touched.accounts.add(c.op === 'put' ? c.record.name : c.key);
        if (c.op === 'put') this.putAccount(c.record);
        else this.deleteAccount(c.key);
        continue;
      }
      const id = c.op === 'put' ? c.record.id : c.key;
      touched.credentials.add(id);
      patterns = this.removeCredential(id) || patterns;
      this.forgetRecord(id);
      if (c.op === 'delete') continue;
      if (c.kind === 'token') this.tokenRecords.set(id, c.record);
      else {
        this.certRecords.set(id, c.record);
        this.bindingKeys.set(`${c.record.match}:${c.record.value}`, id);
      }
      patterns = this.indexCredential(id) || patterns;
    }
    if (patterns) this.certURIPatterns.sort((a, b) => compareSpecificity(a.entry.binding!, b.entry.binding!));
    this.touched = undefined;
    return touched;
  }

  // ---- CheckedState: the accepted version, as changesPass asks about it ----

  account(name: string): AccountRecord | undefined {
    return this.accountRecords.get(name);
  }

  token(id: string): TokenRecord | undefined {
    return this.tokenRecords.get(id);
  }

  certificate(id: string): CertBindingRecord | undefined {
    return this.certRecords.get(id);
  }

  tokenWithHash(hash: string): string | undefined {
    return this.tokensByHash.get(hash)?.id;
  }

  accountNamedLike(lowerName: string): string | undefined {
    return this.lowerNames.get(lowerName);
  }

  bindingOf(key: string): string | undefined {
    return this.bindingKeys.get(key);
  }

  credentialIdsOf(account: string): Iterable<string> {
    return this.credentialsOf.get(account) ?? [];
  }

  /** The inventory as plain records (admin API reads, cross-checks), built once per version. */
  snapshot(): StoreData {
    return (this.snapshotCache ??= {
      version: 1,
      accounts: [...this.accountRecords.values()],
      tokens: [...this.tokenRecords.values()],
      certificates: [...this.certRecords.values()],
    });
  }

  /** An account's own scopes and policy as a principal: `keygate explain` without a token. */
  accountPrincipal(name: string): Principal | undefined {
    const account = this.accounts.get(name);
    return account ? this.principal('account', name, account, { scopes: null, policy: null }, false, null) : undefined;
  }

  /** Drops the stored record of a credential (the entry is removeCredential's business). */
  private forgetRecord(id: string): void {
    this.tokenRecords.delete(id);
    const c = this.certRecords.get(id);
    if (!c) return;
    this.certRecords.delete(id);
    const key = `${c.match}:${c.value}`;
    if (this.bindingKeys.get(key) === id) this.bindingKeys.delete(key);
  }

  private putAccount(record: AccountRecord): void {
    const previous = this.accountRecords.get(record.name);
    if (previous && this.lowerNames.get(previous.name.toLowerCase()) === previous.name) this.lowerNames.delete(previous.name.toLowerCase());
    this.lowerNames.set(record.name.toLowerCase(), record.name);
    this.accountRecords.set(record.name, record);
    this.accounts.set(record.name, { name: record.name, disabled: record.disabled, endMs: record.endDate ? endOfDayMs(record.endDate) : null, record });
    // Every credential of the account carries the account entry and its grant: re-resolve them.
    let patterns = false;
    for (const id of this.credentialsOf.get(record.name) ?? []) {
      this.touched?.credentials.add(id);
      patterns = this.removeCredential(id, false) || patterns;
      patterns = this.indexCredential(id) || patterns;
    }
    if (patterns) this.certURIPatterns.sort((a, b) => compareSpecificity(a.entry.binding!, b.entry.binding!));
  }

  private deleteAccount(name: string): void {
    for (const id of [...(this.credentialsOf.get(name) ?? [])]) {
      this.touched?.credentials.add(id);
      this.removeCredential(id);
      this.forgetRecord(id);
    }
    if (this.lowerNames.get(name.toLowerCase()) === name) this.lowerNames.delete(name.toLowerCase());
    this.credentialsOf.delete(name);
    this.accountRecords.delete(name);
    this.accounts.delete(name);
  }

  /** Drops a credential's entry from every map; true when it was a URI pattern. */
  private removeCredential(id: string, forget = true): boolean {
    const e = this.byId.get(id);
    if (!e) return false;
    this.byId.delete(id);
    if (forget) this.credentialsOf.get(e.account.name)?.delete(id);
    if (e.token) {
      if (this.tokensByHash.get(e.token.hash) === e) this.tokensByHash.delete(e.token.hash);
      return false;
    }
    const b = e.binding!;
    const map = this.certMap(b);
    if (map) {
      const key = b.match === 'dns' ? b.value.toLowerCase() : b.value;
      if (map.get(key) === e) map.delete(key);
      return false;
    }
    this.certURIPatterns = this.certURIPatterns.filter((p) => p.entry !== e);
    return true;
  }

  /** The exact-match map of a binding, or undefined for a URI pattern. */
  private certMap(b: CertBindingRecord): Map<string, Principal> | undefined {
    if (b.match === 'fingerprint') return this.certByFingerprint;
    if (b.match === 'cn') return this.certByCN;
    if (b.match === 'dns') return this.certByDNS;
    return b.value.includes('*') ? undefined : this.certByURI;
  }

  /** Indexes the stored record `id`; true when it is a URI pattern (the list needs sorting). */
  private indexCredential(id: string): boolean {
    const t = this.tokenRecords.get(id);
    const c = t ? undefined : this.certRecords.get(id);
    const accountName = t?.account ?? c?.account;
    const account = accountName === undefined ? undefined : this.accounts.get(accountName);
    // Checked data has no credential without its account; an index never invents one.
    if (!account || (!t && !c)) return false;
    let of = this.credentialsOf.get(account.name);
    if (!of) this.credentialsOf.set(account.name, (of = new Set()));
    of.add(id);
    if (t) {
      const e = this.principal('token', id, account, t, t.status === 'revoked', t.expiresAt ? Date.parse(t.expiresAt) : null, { token: t });
      this.tokensByHash.set(t.hash, e);
      return false;
    }
    const b = c!;
    const e = this.principal('cert', id, account, b, false, b.endDate ? Date.parse(b.endDate) : null, { binding: b });
    const map = this.certMap(b);
    if (map) {
      map.set(b.match === 'dns' ? b.value.toLowerCase() : b.value, e);
      return false;
    }
    this.certURIPatterns.push({ matches: compileUriPattern(b.value).matches, entry: e });
    return true;
  }

  private principal(
    kind: Principal['kind'],
    id: string,
    account: AccountEntry,
    own: { scopes: string[] | null; policy: string | null },
    revoked: boolean,
    expiresMs: number | null,
    extra: Pick<Principal, 'token' | 'binding'> = {},
  ): Principal {
    const { config, catalog, policies } = this.compiled;
    const scopes = own.scopes ?? [...accountScopes(account.record, config)];
    const policyName = own.policy ?? account.record.policy;
    const policy = (policyName ? policies.get(policyName) : policies.get('default')) ?? null;
    const endsMs = minOrNull(expiresMs, account.endMs);
    // Every field written in the literal, none spread in: one shape for every principal with
    // its fields in the object itself (a spread put them in a separate property array: ~3 MB
    // at 100,000 credentials).
    const e: Principal = {
      kind,
      id,
      account,
      revoked,
      expiresMs,
      grant: catalog.grant(scopes),
      policy,
      bucketKey: policy?.per === 'account' ? `a:${account.name}` : `c:${id}`,
      endsMs,
      warnFromMs: endsMs === null ? null : endsMs - config.credentials.warnBefore,
      endsHeader: endsMs === null ? null : endsHeader(endsMs),
      token: extra.token,
      binding: extra.binding,
    };
    if (kind !== 'account') this.byId.set(id, e);
    return e;
  }
}

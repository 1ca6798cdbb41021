// Build once, run many: everything a request needs is compiled here from validated config
// and credential data — routes and their pools, scope rules, rate policies, the credential
// index — into one immutable Runtime. A reload builds a new one and swaps it in whole.
import type { KeygateConfig } from '../config/schema.js';
import type { ValuePath } from '../config/source.js';
import { ScopeCatalog } from '../authorize/grants.js';
import { compileRoute, type CompiledRoute } from '../forward/routes.js';
import type { UpstreamPools } from '../forward/upstream.js';
import { compileUriPattern, endOfDayMs, sortUriPatterns, type AccountEntry, type CredentialEntry, type CredentialIndex, type UriPattern } from '../identify/credential-index.js';
import type { BucketPolicy } from '../ratelimit/token-bucket.js';
import { accountScopes, checkStoreData } from '../store/check.js';
import type { StoreData } from '../store/types.js';

export interface Problem {
  path: ValuePath;
  message: string;
}

/** What is built from keygate.yaml alone. */
export interface CompiledConfig {
  readonly config: KeygateConfig;
  readonly routes: readonly CompiledRoute[];
  readonly catalog: ScopeCatalog;
  readonly policies: ReadonlyMap<string, BucketPolicy>;
  readonly authFailurePolicy: BucketPolicy;
  /** Lower-cased client-auth host prefix. */
  readonly clientAuthPrefix: string;
}

export interface Runtime extends CompiledConfig {
  readonly credentials: CredentialIndex;
}

export function compileConfig(config: KeygateConfig, pools: UpstreamPools): { compiled?: CompiledConfig; problems: Problem[] } {
  const problems: Problem[] = [];
  const { catalog, problems: ruleProblems } = ScopeCatalog.compile(config.scopes);
  for (const [scope, i, message] of ruleProblems) problems.push({ path: i < 0 ? ['scopes', scope] : ['scopes', scope, i], message });
  const policies = new Map<string, BucketPolicy>();
  for (const [name, p] of Object.entries(config.policies)) {
    policies.set(name, { name, ratePerMs: p.rate.perMs, burst: p.burst ?? Math.max(1, Math.ceil(p.rate.perMs * 1000)), per: p.per, rateText: p.rate.text });
  }
  const af = config.authFailures;
  const authFailurePolicy: BucketPolicy = { name: 'auth-failures', ratePerMs: af.rate.perMs, burst: af.burst, per: 'credential', rateText: af.rate.text };
  // Pools connect lazily: compiling for `keygate check` opens no socket.
  const routes = config.routes.map((r, i) => compileRoute(i, r, pools.get(new URL(r.upstream).origin, r.connections)));
  if (problems.length) return { problems };
  return {
    compiled: { config, routes, catalog, policies, authFailurePolicy, clientAuthPrefix: config.listen.clientAuth.hostPrefix.toLowerCase() },
    problems,
  };
}

/** Index credential data against compiled config. Problems have store paths. */
export function indexCredentials(compiled: CompiledConfig, data: StoreData): { runtime?: Runtime; problems: Problem[] } {
  const { config, catalog, policies } = compiled;
  const problems = checkStoreData(data, config);
  if (problems.length) return { problems };

  const warnBefore = config.credentials.warnBefore;
  const defaultPolicy = policies.get('default') ?? null;
  const accounts = new Map<string, AccountEntry>();
  for (const a of data.accounts) {
    accounts.set(a.name, { name: a.name, disabled: a.disabled, endMs: a.endDate ? endOfDayMs(a.endDate) : null, record: a });
  }
  const byId = new Map<string, CredentialEntry>();
  const entry = (
    kind: CredentialEntry['kind'],
    id: string,
    accountName: string,
    own: { scopes: string[] | null; policy: string | null },
    revoked: boolean,
    expiresMs: number | null,
    extra: Pick<CredentialEntry, 'token' | 'digest' | 'binding'>,
  ): CredentialEntry => {
    const account = accounts.get(accountName)!;
    const scopes = own.scopes ?? [...accountScopes(account.record, config)];
    const policyName = own.policy ?? account.record.policy;
    const policy = policyName ? policies.get(policyName)! : defaultPolicy;
    const endsMs = minOrNull(expiresMs, account.endMs);
    const e: CredentialEntry = {
      kind,
      id,
      account,
      revoked,
      expiresMs,
      grant: catalog.grant(scopes),
      policy,
      bucketKey: policy?.per === 'account' ? `a:${account.name}` : `c:${id}`,
      endsMs,
      warnFromMs: endsMs === null ? null : endsMs - warnBefore,
      endsHeader: endsMs === null ? null : new Date(endsMs).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      ...extra,
    };
    byId.set(id, e);
    return e;
  };

  const tokensByHash = new Map<string, CredentialEntry>();
  for (const t of data.tokens) {
    tokensByHash.set(t.hash, entry('token', t.id, t.account, t, t.status === 'revoked', t.expiresAt ? Date.parse(t.expiresAt) : null, { token: t, digest: Buffer.from(t.hash, 'hex') }));
  }
  const certByFingerprint = new Map<string, CredentialEntry>();
  const certByCN = new Map<string, CredentialEntry>();
  const certByDNS = new Map<string, CredentialEntry>();
  const certByURI = new Map<string, CredentialEntry>();
  const certURIPatterns: UriPattern[] = [];
  for (const c of data.certificates) {
    const e = entry('cert', c.id, c.account, c, false, c.endDate ? Date.parse(c.endDate) : null, { binding: c });
    if (c.match === 'fingerprint') certByFingerprint.set(c.value, e);
    else if (c.match === 'cn') certByCN.set(c.value, e);
    else if (c.match === 'dns') certByDNS.set(c.value.toLowerCase(), e);
    else if (c.value.includes('*')) certURIPatterns.push({ regex: compileUriPattern(c.value), entry: e });
    else certByURI.set(c.value, e);
  }
  sortUriPatterns(certURIPatterns);
  return {
    runtime: { ...compiled, credentials: { tokensByHash, byId, accounts, certByFingerprint, certByCN, certByDNS, certByURI, certURIPatterns } },
    problems: [],
  };
}

function minOrNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

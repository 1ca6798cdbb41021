// What the proxy would do with one request from one account (optionally one of its tokens),
// worked out from the compiled runtime alone: no socket, no TLS file, no clock but the one
// passed in. It follows the request path's stages in order (maintenance, path, route,
// identify, authorize, limit) and keeps going after the first refusal, so that one run names
// every problem an operator has to fix. Shared by `keygate explain` and the admin API.
import { ADMIN_SCOPE } from '../authorize/builtin.js';
import { normalizeTarget } from '../authorize/normalize-path.js';
import { ERRORS, type ErrorCode } from '../errors/catalog.js';
import { matchRoute } from '../forward/routes.js';
import type { CredentialEntry } from '../identify/credential-index.js';
import type { Runtime } from '../pipeline/runtime.js';
import { accountScopes } from '../store/check.js';

export interface ExplainInput {
  account: string;
  /** A token id of that account; without it the account's own scopes and policy apply. */
  token?: string;
  method: string;
  /** Origin-form target: /path[?query]. */
  path: string;
}

/** Input that cannot be explained at all (unknown account, a token of another account…). */
export class ExplainInputError extends Error {}

export interface Refusal {
  status: number;
  code: ErrorCode;
  detail: string;
}

export interface Explanation {
  decision: 'allow' | 'deny';
  /** The first refusal on the request path, as the proxy would answer it. */
  refusal: Refusal | null;
  request: { method: string; path: string; normalizedPath: string | null; pathRefused: string | null };
  route: { index: number; pathPrefix: string; upstream: string; public: boolean } | null;
  account: { name: string; status: 'active' | 'disabled' | 'ended'; endDate: string | null; scopes: string[] };
  credential: { kind: 'account' | 'token'; id: string | null; label: string | null; status: 'active' | 'revoked' | 'expired' | null; expiresAt: string | null; ownScopes: boolean } | null;
  /** Effective scopes checked against the request. */
  scopes: string[];
  authorization: {
    mode: 'enforce' | 'shadow';
    /** The rule that allows the request, or null. */
    allowedBy: { scope: string; rule: string } | null;
    /** Scopes of keygate.yaml that would allow it. */
    wouldAllow: string[];
    /** Of those, the ones the account holds (a token's own scopes may leave them out). */
    accountHas: string[];
    why: string;
  } | null;
  policy: { name: string; rate: string; burst: number; per: 'credential' | 'account' } | null;
  /** State problems of the account and credential, each a refusal on its own. */
  problems: string[];
  /** Things worth knowing that do not refuse the request. */
  notes: string[];
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const refusal = (code: ErrorCode, detail?: string): Refusal => ({ status: ERRORS[code].status, code, detail: detail ?? ERRORS[code].detail });
const METHOD = /^[A-Za-z]{1,20}$/;

export function explainRequest(rt: Runtime, input: ExplainInput, nowMs: number): Explanation {
  const method = input.method.toUpperCase();
  if (!METHOD.test(input.method)) throw new ExplainInputError(`"${input.method}" is not an HTTP method (GET, POST, …)`);
  if (!input.path.startsWith('/')) throw new ExplainInputError(`the path must start with "/" (got "${input.path}")`);
  const accountEntry = rt.credentials.accounts.get(input.account);
  if (!accountEntry) throw new ExplainInputError(`no account named "${input.account}"`);
  let credential: CredentialEntry | undefined;
  if (input.token !== undefined) {
    credential = rt.credentials.byId.get(input.token);
    if (!credential || credential.kind !== 'token') throw new ExplainInputError(`no token with id "${input.token}"`);
    if (credential.account.name !== accountEntry.name) throw new ExplainInputError(`token ${input.token} belongs to account "${credential.account.name}", not "${accountEntry.name}"`);
  }

  const config = rt.config;
  const refusals: Refusal[] = [];
  const problems: string[] = [];
  const notes: string[] = [];
  const record = accountEntry.record;

  const target = normalizeTarget(input.path);
  const normalizedPath = target.ok ? target.path : null;
  if (!target.ok) refusals.push(refusal('KG_ERR_PATH_INVALID', `The request path is refused: ${target.why}.`));
  else if (target.path !== input.path.split('?', 1)[0]) notes.push(`the path is normalized to ${target.path}; that is what is checked and forwarded`);

  const matched = normalizedPath === null ? undefined : matchRoute(rt.routes, normalizedPath);
  const route = matched ? { index: matched.index, pathPrefix: matched.pathPrefix, upstream: matched.upstream.origin, public: matched.public } : null;
  if (normalizedPath !== null && !matched) refusals.push(refusal('KG_ERR_NO_ROUTE'));
  if (matched && !matched.public && config.maintenance) refusals.push(refusal('KG_ERR_MAINTENANCE'));

  const accountStatus = accountEntry.disabled ? 'disabled' : accountEntry.endMs !== null && accountEntry.endMs <= nowMs ? 'ended' : 'active';
  const accountScopeSet = accountScopes(record, config);
  const summary: Explanation = {
    decision: 'deny',
    refusal: null,
    request: { method, path: input.path, normalizedPath, pathRefused: target.ok ? null : target.why },
    route,
    account: { name: accountEntry.name, status: accountStatus, endDate: record.endDate, scopes: [...accountScopeSet].sort() },
    credential: null,
    scopes: [],
    authorization: null,
    policy: null,
    problems,
    notes,
  };

  if (matched?.public) {
    notes.push('a public route: no credential is checked, no scope and no rate limit apply');
    summary.refusal = refusals[0] ?? null;
    summary.decision = summary.refusal ? 'deny' : 'allow';
    return summary;
  }

  // identify: the credential's own state first (as the proxy checks it), then its account's.
  const identify: Refusal[] = [];
  if (credential) {
    const t = credential.token!;
    const status = credential.revoked ? 'revoked' : credential.expiresMs !== null && credential.expiresMs <= nowMs ? 'expired' : 'active';
    summary.credential = { kind: 'token', id: credential.id, label: t.label, status, expiresAt: iso(credential.expiresMs), ownScopes: t.scopes !== null };
    if (t.environment !== config.environment) {
      const detail = t.environment ? `The API token belongs to environment "${t.environment}"${config.environment ? `; this is "${config.environment}"` : '; this keygate has no environment'}.` : `The API token has no environment; this is "${config.environment}".`;
      identify.push(refusal('KG_ERR_TOKEN_WRONG_ENVIRONMENT', detail));
      problems.push(`token ${credential.id} was minted for ${t.environment ? `environment "${t.environment}"` : 'no environment'}; this keygate is ${config.environment ? `"${config.environment}"` : 'without an environment'}`);
    }
    if (status === 'revoked') {
      identify.push(refusal('KG_ERR_TOKEN_REVOKED'));
      problems.push(`token ${credential.id} is revoked${t.revokedAt ? ` (since ${t.revokedAt}${t.revokeReason ? `: ${t.revokeReason}` : ''})` : ''}`);
    }
    if (status === 'expired') {
      identify.push(refusal('KG_ERR_TOKEN_EXPIRED'));
      problems.push(`token ${credential.id} expired at ${iso(credential.expiresMs)}`);
    }
    if (t.rotatedTo) notes.push(`token ${credential.id} was rotated; its successor is ${t.rotatedTo}`);
  } else {
    summary.credential = { kind: 'account', id: null, label: null, status: null, expiresAt: null, ownScopes: false };
    notes.push("no --token given: the account's own scopes and policy are shown; a token with scopes of its own may allow less");
  }
  if (accountEntry.disabled) {
    identify.push(refusal('KG_ERR_ACCOUNT_DISABLED'));
    problems.push(`account "${accountEntry.name}" is disabled`);
  }
  if (accountEntry.endMs !== null && accountEntry.endMs <= nowMs) {
    identify.push(refusal('KG_ERR_ACCOUNT_ENDED'));
    problems.push(`account "${accountEntry.name}" ended on ${record.endDate} (23:59:59 UTC)`);
  }
  refusals.push(...identify);

  const endsMs = credential ? credential.endsMs : accountEntry.endMs;
  if (endsMs !== null && endsMs > nowMs && endsMs - config.credentials.warnBefore <= nowMs) {
    notes.push(`ends at ${iso(endsMs)}, within credentials.warnBefore: responses carry keygate-credential-expires`);
  }

  // authorize
  const grant = credential ? credential.grant : rt.catalog.grant(accountScopeSet);
  summary.scopes = [...grant.scopes];
  if (grant.admin) notes.push(`${ADMIN_SCOPE} opens the admin API on the admin listener only; it allows no route here`);
  if (normalizedPath !== null && matched) {
    const rule = grant.allows(method, normalizedPath);
    const wouldAllow = rt.catalog.scopesAllowing(method, normalizedPath);
    const accountHas = wouldAllow.filter((s) => accountScopeSet.has(s));
    let why: string;
    if (rule) {
      why = `allowed by scope ${rule.scope}: ${rule.text}`;
    } else {
      const held = grant.scopes.length ? grant.scopes.join(', ') : 'none';
      if (wouldAllow.length === 0) why = `no scope in keygate.yaml allows ${method} ${normalizedPath} (the credential's scopes: ${held})`;
      else if (accountHas.length && credential?.token?.scopes) why = `the account has ${accountHas.join(', ')}, but this token's own scopes (${held}) leave it out`;
      else why = `none of the credential's scopes (${held}) allows ${method} ${normalizedPath}; it needs one of: ${wouldAllow.join(', ')}`;
    }
    const mode = config.authorization.mode;
    summary.authorization = { mode, allowedBy: rule ? { scope: rule.scope, rule: rule.text } : null, wouldAllow, accountHas, why };
    if (!rule) {
      const detail = wouldAllow.length ? `${method} ${normalizedPath} needs one of these scopes: ${wouldAllow.join(', ')}.` : `No scope allows ${method} ${normalizedPath}.`;
      if (mode === 'shadow') notes.push('authorization.mode is shadow: the denial is logged and counted, and the request is admitted');
      else refusals.push(refusal('KG_ERR_SCOPE_DENIED', detail));
    }
  }

  // limit
  const policy = credential ? credential.policy : record.policy ? (rt.policies.get(record.policy) ?? null) : (rt.policies.get('default') ?? null);
  summary.policy = policy ? { name: policy.name, rate: policy.rateText, burst: policy.burst, per: policy.per } : null;
  if (!policy) notes.push('no rate policy applies (none named, and keygate.yaml has no "default" policy)');

  summary.refusal = refusals[0] ?? null;
  summary.decision = summary.refusal ? 'deny' : 'allow';
  return summary;
}

/** The text form printed by `keygate explain`. */
export function formatExplanation(e: Explanation): string {
  const lines: Array<[string, string]> = [];
  lines.push(['request', `${e.request.method} ${e.request.path}`]);
  lines.push(['path', e.request.normalizedPath ?? `refused: ${e.request.pathRefused}`]);
  lines.push(['route', e.route ? `#${e.route.index} ${e.route.pathPrefix} -> ${e.route.upstream}${e.route.public ? ' (public)' : ''}` : e.request.normalizedPath ? 'none matches' : '-']);
  lines.push(['account', `${e.account.name} (${e.account.status}${e.account.endDate ? `, end date ${e.account.endDate}` : ''})`]);
  if (e.credential?.kind === 'token') {
    const c = e.credential;
    lines.push(['token', `${c.id}${c.label ? ` "${c.label}"` : ''} (${c.status}${c.expiresAt ? `, expires ${c.expiresAt}` : ''})`]);
  }
  if (!e.route?.public) {
    lines.push(['scopes', `${e.scopes.join(', ') || 'none'}${e.credential?.ownScopes ? " (the token's own)" : e.credential?.kind === 'token' ? " (the account's)" : ''}`]);
    if (e.authorization) {
      lines.push(['rule', e.authorization.why]);
      if (!e.authorization.allowedBy && e.authorization.wouldAllow.length) lines.push(['', `would be allowed by: ${e.authorization.wouldAllow.join(', ')}`]);
    }
    lines.push(['policy', e.policy ? `${e.policy.name}: ${e.policy.rate}, burst ${e.policy.burst}, per ${e.policy.per}` : 'none (no rate limit)']);
  }
  for (const p of e.problems) lines.push(['problem', p]);
  for (const n of e.notes) lines.push(['note', n]);
  lines.push(['decision', e.refusal ? `DENY: ${e.refusal.status} ${e.refusal.code}: ${e.refusal.detail}` : 'ALLOW']);
  return lines.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n') + '\n';
}

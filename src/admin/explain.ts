// What the proxy would do with one request from one account (optionally one of its tokens):
// the request is taken through the proxy's own compiled chains in dry-run mode
// (pipeline/dry-run.ts), so the decision cannot disagree with the proxy's. This file only
// checks the input and words the result: which rule allowed it or why none did, which policy
// applies, what is wrong with the credential. Shared by `keygate explain` and the admin API.
import { ADMIN_SCOPE } from '../config/builtin-scopes.js';
import { END_OF_DAY_TEXT } from '../config/dates.js';
import { KeygateFault } from '../errors/fault.js';
import type { ErrorCode } from '../errors/catalog.js';
import { dryRun, type StageVerdict } from '../pipeline/dry-run.js';
import type { ExplainRuntime } from '../runtime/explain-runtime.js';
import { accountScopes } from '../store/check.js';
import type { Principal } from '../vocabulary/principal.js';

export interface ExplainInput {
  /** The account; may be left out when `token` is given (a token names its account). */
  account?: string;
  /** A token id of that account; without it the account's own scopes and policy apply. */
  token?: string;
  method: string;
  /** Origin-form target: /path[?query]. */
  path: string;
}

export type { ExplainRuntime };

/** Input that cannot be explained at all (unknown account, a token of another account…). */
export class ExplainInputError extends KeygateFault {
  constructor(message: string) {
    super('KG_ERR_EXPLAIN_INPUT', message);
  }
}

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
  /** Every stage of the chain with its verdict, in order. */
  stages: readonly StageVerdict[];
  /** The credential's own problem that identify refused it for. */
  problems: string[];
  /** Things worth knowing that do not refuse the request. */
  notes: string[];
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const METHOD = /^[A-Za-z]{1,20}$/;

/** The input checked, with the account it names (the token's, when only a token is given). */
function checkInput(rt: ExplainRuntime, input: ExplainInput): ExplainInput & { account: string } {
  if (!METHOD.test(input.method)) throw new ExplainInputError(`"${input.method}" is not an HTTP method (GET, POST, …)`);
  if (!input.path.startsWith('/')) throw new ExplainInputError(`the path must start with "/" (got "${input.path}")`);
  if (input.account === undefined && input.token === undefined) throw new ExplainInputError('name an account or a token');
  if (input.account !== undefined && !rt.index.accounts.has(input.account)) throw new ExplainInputError(`no account named "${input.account}"`);
  if (input.token === undefined) return { ...input, account: input.account! };
  const t = rt.index.byId.get(input.token);
  if (!t || t.kind !== 'token') throw new ExplainInputError(`no token with id "${input.token}"`);
  if (input.account !== undefined && t.account.name !== input.account) throw new ExplainInputError(`token ${input.token} belongs to account "${t.account.name}", not "${input.account}"`);
  return { ...input, account: t.account.name };
}

/** The identify refusal in an operator's words. */
function problemOf(code: ErrorCode, c: Principal, environment: string | null): string | undefined {
  const t = c.token;
  const a = c.account;
  switch (code) {
    case 'KG_ERR_TOKEN_WRONG_ENVIRONMENT':
      return `token ${c.id} was minted for ${t?.environment ? `environment "${t.environment}"` : 'no environment'}; this keygate is ${environment ? `"${environment}"` : 'without an environment'}`;
    case 'KG_ERR_TOKEN_REVOKED':
      return `token ${c.id} is revoked${t?.revokedAt ? ` (since ${t.revokedAt}${t.revokeReason ? `: ${t.revokeReason}` : ''})` : ''}`;
    case 'KG_ERR_TOKEN_EXPIRED':
      return `token ${c.id} expired at ${iso(c.expiresMs)}`;
    case 'KG_ERR_ACCOUNT_DISABLED':
      return `account "${a.name}" is disabled`;
    case 'KG_ERR_ACCOUNT_ENDED':
      return `account "${a.name}" ended on ${a.record.endDate} (at ${END_OF_DAY_TEXT})`;
    default:
      return undefined;
  }
}

export async function explainRequest(rt: ExplainRuntime, asked: ExplainInput, nowMs: number): Promise<Explanation> {
  const input = checkInput(rt, asked);
  const method = input.method.toUpperCase();
  const { config, catalog } = rt.compiled;
  const run = await dryRun(rt.pipeline, { method, target: input.path, reference: { account: input.account, token: input.token }, nowMs });
  const { ctx, stages } = run;
  const verdict = (name: StageVerdict['stage']) => stages.find((s) => s.stage === name);
  const notes: string[] = [];
  const problems: string[] = [];

  const target = verdict('target');
  const pathRefused = target?.code === 'KG_ERR_PATH_INVALID' ? target.detail!.replace(/^The request path is refused: /, '').replace(/\.$/, '') : null;
  const normalizedPath = pathRefused === null ? ctx.path : null;
  if (normalizedPath !== null && normalizedPath !== input.path.split('?', 1)[0]) notes.push(`the path is normalized to ${normalizedPath}; that is what is checked and forwarded`);
  const route = ctx.route ? { index: ctx.route.index, pathPrefix: ctx.route.pathPrefix, upstream: ctx.route.upstream, public: ctx.route.public } : null;

  const accountEntry = rt.index.accounts.get(input.account)!;
  const accountScopeSet = accountScopes(accountEntry.record, config);
  const accountStatus = accountEntry.disabled ? 'disabled' : accountEntry.endMs !== null && accountEntry.endMs <= nowMs ? 'ended' : 'active';
  const summary: Explanation = {
    decision: run.refusal ? 'deny' : 'allow',
    refusal: run.refusal ? { status: run.refusal.status, code: run.refusal.code, detail: run.refusal.detail } : null,
    request: { method, path: input.path, normalizedPath, pathRefused },
    route,
    account: { name: accountEntry.name, status: accountStatus, endDate: accountEntry.record.endDate, scopes: [...accountScopeSet].sort() },
    credential: null,
    scopes: [],
    authorization: null,
    policy: null,
    stages,
    problems,
    notes,
  };
  if (route?.public) {
    notes.push('a public route: no credential is checked, no scope and no rate limit apply');
    return summary;
  }

  // The principal as the dry run's identify resolved it (the token, or the account itself).
  const c = ctx.principal ?? (input.token ? rt.index.byId.get(input.token) : rt.index.accountPrincipal(input.account));
  if (!c) return summary;
  if (c.kind === 'token' && c.token) {
    const t = c.token;
    const status = c.revoked ? 'revoked' : c.expiresMs !== null && c.expiresMs <= nowMs ? 'expired' : 'active';
    summary.credential = { kind: 'token', id: c.id, label: t.label, status, expiresAt: iso(c.expiresMs), ownScopes: t.scopes !== null };
    if (t.rotatedTo) notes.push(`token ${c.id} was rotated; its successor is ${t.rotatedTo}`);
  } else {
    summary.credential = { kind: 'account', id: null, label: null, status: null, expiresAt: null, ownScopes: false };
    notes.push("no --token given: the account's own scopes and policy are shown; a token with scopes of its own may allow less");
  }
  const identify = verdict('identify');
  if (identify?.verdict === 'deny') {
    const p = problemOf(identify.code!, c, config.environment);
    if (p) problems.push(p);
  }
  if (ctx.expiresHeader && c.endsMs !== null && c.endsMs > nowMs) notes.push(`ends at ${iso(c.endsMs)}, within credentials.warnBefore: responses carry keygate-credential-expires`);

  summary.scopes = [...c.grant.scopes];
  if (c.grant.admin) notes.push(`${ADMIN_SCOPE} opens the admin API on the admin listener only; it allows no route here`);
  const authorize = verdict('authorize');
  if (authorize && authorize.verdict !== 'not-reached' && normalizedPath !== null) {
    const wouldAllow = catalog.scopesAllowing(method, normalizedPath);
    const accountHas = wouldAllow.filter((s) => accountScopeSet.has(s));
    const rule = ctx.rule;
    let why: string;
    if (rule) {
      why = `allowed by scope ${rule.scope}: ${rule.text}`;
    } else {
      const held = c.grant.scopes.length ? c.grant.scopes.join(', ') : 'none';
      if (wouldAllow.length === 0) why = `no scope in keygate.yaml allows ${method} ${normalizedPath} (the credential's scopes: ${held})`;
      else if (accountHas.length && c.token?.scopes) why = `the account has ${accountHas.join(', ')}, but this token's own scopes (${held}) leave it out`;
      else why = `none of the credential's scopes (${held}) allows ${method} ${normalizedPath}; it needs one of: ${wouldAllow.join(', ')}`;
    }
    const mode = config.authorization.mode;
    summary.authorization = { mode, allowedBy: rule ? { scope: rule.scope, rule: rule.text } : null, wouldAllow, accountHas, why };
    if (ctx.shadowDenied) notes.push('authorization.mode is shadow: the denial is logged and counted, and the request is admitted');
  }

  const policy = c.policy;
  summary.policy = policy ? { name: policy.name, rate: policy.rateText, burst: policy.burst, per: policy.per } : null;
  if (!policy) notes.push('no rate policy applies (none named, and keygate.yaml has no "default" policy)');
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

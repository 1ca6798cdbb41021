// ② Identify: who is calling. On an API-key host the token (x-api-key or Authorization:
// Bearer) is checked for format and environment before any lookup, then found by its SHA-256
// in one map lookup. On a client-certificate host the verified certificate is matched to a
// binding. Either way the account and the credential must be live. A refusal is a 401 with
// its WWW-Authenticate challenge — or, once the client's address has used up its budget of
// failed authentications, a 429, so that guessing tokens costs time. A request with a valid
// credential is never held back by that budget.
import { KeygateError, kgError } from '../errors/keygate-error.js';
import type { Identified, Routed } from '../vocabulary/context.js';
import type { BucketPolicy, LimitAnswer, RateLimiter } from '../vocabulary/limits.js';
import type { CredentialIndex, Principal } from '../vocabulary/principal.js';
import type { Stage, Verdict } from '../vocabulary/stage.js';
import { liveness, lookupCertificate, lookupToken, presentedToken, wrongEnvironment, type Found } from './lookup.js';

export interface IdentifyOptions {
  /** The live index (it changes with the inventory, without a new chain). */
  index: () => CredentialIndex;
  environment: string | null;
  /** Failed authentications per client IP, and their budget. */
  failures: RateLimiter;
  failurePolicy: BucketPolicy;
}

/** 401s with their challenge, per refusal and mode: a refusal under a flood of bad tokens builds nothing. */
const CHALLENGED = new WeakMap<KeygateError, { 'api-key'?: KeygateError; clientauth?: KeygateError }>();

function challenge(ctx: Routed, err: KeygateError): KeygateError {
  let byMode = CHALLENGED.get(err);
  if (!byMode) CHALLENGED.set(err, (byMode = {}));
  let e = byMode[ctx.mode];
  if (!e) {
    const scheme = ctx.mode === 'clientauth' ? 'ClientCertificate realm="keygate"' : err.code === 'KG_ERR_CREDENTIAL_MISSING' ? 'Bearer realm="keygate"' : 'Bearer realm="keygate", error="invalid_token"';
    byMode[ctx.mode] = e = new KeygateError(err.code, err.detail, { ...err.headers, 'www-authenticate': scheme });
  }
  return e;
}

/** The per-address 429, one per Retry-After value (a handful of small numbers). */
const AUTH_LIMITED = new Map<number, KeygateError>();
function authLimited(retryAfterSec: number): KeygateError {
  let e = AUTH_LIMITED.get(retryAfterSec);
  if (!e) {
    e = new KeygateError('KG_ERR_AUTH_RATE_LIMITED', undefined, { 'retry-after': String(retryAfterSec) });
    if (AUTH_LIMITED.size < 1_000) AUTH_LIMITED.set(retryAfterSec, e);
  }
  return e;
}

function presented(ctx: Routed, opts: IdentifyOptions): Found {
  if (ctx.mode === 'clientauth') {
    ctx.auth = 'mtls';
    const found = lookupCertificate(opts.index(), ctx.x.tls, ctx.nowMs);
    if (found.peer) ctx.peer = found.peer;
    return found;
  }
  ctx.auth = 'api-key';
  const p = presentedToken(ctx.headers, 'upstream');
  if (p.error) return { error: p.error };
  if (!p.token) return { error: kgError('KG_ERR_CREDENTIAL_MISSING') };
  return lookupToken(opts.index(), opts.environment, p.token);
}

/** After the lookup, whatever found the credential: the same liveness rules and the same 401s. */
function admit(ctx: Routed, found: Found): KeygateError | undefined {
  if (found.entry) ctx.principal = found.entry; // known from here on: audited with its id even when refused
  const err = found.error ?? liveness(found.entry!, ctx.nowMs);
  if (err) ctx.authFailure = err;
  return err;
}

const produced = (ctx: Routed) => ctx.principal !== undefined;

export function identifyStage(opts: IdentifyOptions): Stage<Routed, Identified> {
  const { failures, failurePolicy } = opts;
  const limited = (ctx: Routed, err: KeygateError, r: LimitAnswer): Verdict =>
    r.allowed || r.unavailable ? challenge(ctx, err) : authLimited(r.retryAfterSec);
  return {
    name: 'identify',
    produced,
    run: (ctx) => {
      const err = admit(ctx, presented(ctx, opts));
      if (!err) return undefined;
      const r = failures.take(ctx.clientIp, failurePolicy, ctx.nowMs);
      return r instanceof Promise ? r.then((res) => limited(ctx, err, res)) : limited(ctx, err, r);
    },
  };
}

export interface ReferenceOptions {
  index: () => CredentialIndex;
  environment: string | null;
  /** The account's own scopes and policy, as a principal (explain without a token). */
  accountPrincipal: (account: string) => Principal | undefined;
}

/**
 * The dry run's identify (keygate explain): the credential is named by account and token id
 * instead of presented — explain never sees a secret — and everything after the lookup is the
 * request path's own. The failure budget is not spent.
 */
export function identifyByReference(opts: ReferenceOptions): Stage<Routed, Identified> {
  return {
    name: 'identify',
    produced,
    run: (ctx) => {
      const ref = ctx.reference;
      ctx.auth = 'api-key';
      if (!ref) return kgError('KG_ERR_CREDENTIAL_MISSING');
      if (ref.token === undefined) {
        const entry = opts.accountPrincipal(ref.account);
        return entry ? admit(ctx, { entry }) : kgError('KG_ERR_CREDENTIAL_MISSING');
      }
      const entry = opts.index().byId.get(ref.token);
      if (!entry || entry.kind !== 'token') return kgError('KG_ERR_TOKEN_UNKNOWN');
      const env = entry.token?.environment ?? null;
      return admit(ctx, env !== opts.environment ? { entry, error: wrongEnvironment(env) } : { entry });
    },
  };
}

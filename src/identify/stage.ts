// ② Identify: who is calling. On an API-key host the token (x-api-key or Authorization:
// Bearer) is checked for format and environment before any lookup, then found by its SHA-256
// in one map lookup. On a client-certificate host the verified certificate is matched to a
// binding. Either way the account and the credential must be live.
import type { TLSSocket } from 'node:tls';
import { kgError, type KeygateError } from '../errors/keygate-error.js';
import type { RequestContext } from '../pipeline/context.js';
import { liveness, lookupCertificate, lookupToken, type Found } from './lookup.js';

export { findBinding } from './lookup.js';

const BEARER = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i;

export function identify(ctx: RequestContext): KeygateError | undefined {
  let found: Found;
  if (ctx.mode === 'clientauth') {
    ctx.auth = 'mtls';
    found = lookupCertificate(ctx.rt.credentials, ctx.req.socket as TLSSocket, ctx.nowMs);
    if (found.peer) ctx.peer = found.peer;
  } else {
    ctx.auth = 'api-key';
    const token = presentedToken(ctx);
    if (typeof token !== 'string') return token;
    found = lookupToken(ctx.rt.credentials, ctx.rt.config.environment, token);
  }
  if (found.error) return found.error;
  const entry = found.entry!;
  ctx.credential = entry; // known from here on: audited with its id even when refused
  return liveness(entry, ctx.nowMs);
}

/** The one token of the request, or why there is none. */
function presentedToken(ctx: RequestContext): string | KeygateError {
  const h = ctx.headers;
  if (h.apiKeyCount > 1 || h.authorizationCount > 1) return kgError('KG_ERR_CREDENTIAL_AMBIGUOUS');
  const bearer = h.authorization !== undefined ? BEARER.exec(h.authorization)?.[1] : undefined;
  let token: string | undefined;
  if (h.apiKey !== undefined) {
    token = h.apiKey.trim();
    // A keygate token in Authorization as well is a second credential, unless it is the same.
    if (bearer !== undefined && bearer.startsWith('kg_') && bearer !== token) return kgError('KG_ERR_CREDENTIAL_AMBIGUOUS');
  } else {
    token = bearer;
  }
  if (token === undefined || token === '') return kgError('KG_ERR_CREDENTIAL_MISSING');
  return token;
}

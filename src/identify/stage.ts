// ② Identify: who is calling. On an API-key host the token (x-api-key or Authorization:
// Bearer) is checked for format and environment before any lookup, then found by its SHA-256
// in one map lookup. On a client-certificate host the verified certificate is matched to a
// binding. Either way the account and the credential must be live.
import type { TLSSocket } from 'node:tls';
import { kgError, type KeygateError } from '../errors/keygate-error.js';
import type { RequestContext } from '../pipeline/context.js';
import { liveness, lookupCertificate, lookupToken, presentedToken, type Found } from './lookup.js';

export function identify(ctx: RequestContext): KeygateError | undefined {
  let found: Found;
  if (ctx.mode === 'clientauth') {
    ctx.auth = 'mtls';
    found = lookupCertificate(ctx.rt.credentials, ctx.req.socket as TLSSocket, ctx.nowMs);
    if (found.peer) ctx.peer = found.peer;
  } else {
    ctx.auth = 'api-key';
    const presented = presentedToken(ctx.headers, 'upstream');
    if (presented.error) return presented.error;
    if (!presented.token) return kgError('KG_ERR_CREDENTIAL_MISSING');
    found = lookupToken(ctx.rt.credentials, ctx.rt.config.environment, presented.token);
  }
  if (found.error) return found.error;
  const entry = found.entry!;
  ctx.credential = entry; // known from here on: audited with its id even when refused
  return liveness(entry, ctx.nowMs);
}

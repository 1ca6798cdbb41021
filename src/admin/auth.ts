// Who is calling the admin API. The same credentials and the same rules as the public side
// (token format and environment before any lookup, SHA-256 index, revoked / expired /
// disabled / ended, certificate bindings), then one more: the credential's effective scopes
// must include the built-in keygate:admin scope. 401 without a usable credential, 403 with one
// that lacks the scope.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ADMIN_SCOPE } from '../config/builtin-scopes.js';
import { KeygateError, kgError } from '../errors/keygate-error.js';
import { liveness, lookupCertificate, lookupToken, presentedToken, type Found } from '../identify/lookup.js';
import { scanRequestHeaders } from '../request/scan-headers.js';
import type { CredentialIndex } from '../vocabulary/principal.js';

export interface AdminIdentity {
  account: string;
  credential: string;
  auth: 'api-key' | 'mtls';
}

export type AdminAuthResult =
  | { ok: true; identity: AdminIdentity }
  /** `identity` is set when the caller was identified but may not use the admin API. */
  | { ok: false; error: KeygateError; identity?: AdminIdentity };

/** On the admin listener no client certificate at all means "no credential", not a 401 for the certificate. */
function adminCertificate(index: CredentialIndex, socket: TLSSocket, nowMs: number): Found {
  const found = lookupCertificate(index, socket, nowMs);
  if (found.error?.code === 'KG_ERR_CERT_MISSING') return { error: new KeygateError('KG_ERR_CREDENTIAL_MISSING', 'Neither an API token nor a client certificate was presented.') };
  return found;
}

/**
 * A token wins over a client certificate when both are presented: the token is what the
 * caller chose for this request, a certificate may be sent by the client library anyway.
 */
export function authenticateAdmin(req: IncomingMessage, index: CredentialIndex, environment: string | null, nowMs: number): AdminAuthResult {
  const presented = presentedToken(scanRequestHeaders(req.rawHeaders), 'ambiguous');
  if (presented.error) return { ok: false, error: presented.error };
  const socket = req.socket as TLSSocket;
  const tls = socket.encrypted === true;
  let found: Found;
  if (presented.token !== undefined) found = lookupToken(index, environment, presented.token);
  else if (tls) found = adminCertificate(index, socket, nowMs);
  else found = { error: kgError('KG_ERR_CREDENTIAL_MISSING') };
  const entry = found.entry;
  const error = found.error ?? (entry ? liveness(entry, nowMs) : undefined);
  const identity: AdminIdentity | undefined = entry ? { account: entry.account.name, credential: entry.id, auth: entry.kind === 'cert' ? 'mtls' : 'api-key' } : undefined;
  if (error || !entry || !identity) {
    const scheme = presented.token === undefined && tls ? 'ClientCertificate realm="keygate-admin"' : error?.code === 'KG_ERR_CREDENTIAL_MISSING' ? 'Bearer realm="keygate-admin"' : 'Bearer realm="keygate-admin", error="invalid_token"';
    const e = error ?? kgError('KG_ERR_CREDENTIAL_MISSING');
    return { ok: false, error: new KeygateError(e.code, e.detail, { 'www-authenticate': scheme }), identity };
  }
  if (!entry.grant.admin) {
    return { ok: false, identity, error: new KeygateError('KG_ERR_SCOPE_DENIED', `The admin API needs the ${ADMIN_SCOPE} scope; credential ${entry.id} of account "${entry.account.name}" does not have it.`) };
  }
  return { ok: true, identity };
}

// Credential → principal, shared by the request path (identify-stage.ts) and the admin API
// (admin/auth.ts), so both admit exactly the same callers.
import type { TLSSocket } from 'node:tls';
import type { ErrorCode } from '../errors/catalog.js';
import { KeygateError, kgError } from '../errors/keygate-error.js';
import { hashToken, parseToken } from '../store/token-format.js';
import type { ScannedHeaders } from '../vocabulary/context.js';
import type { CredentialIndex, PeerIdentity, Principal } from '../vocabulary/principal.js';
import { peerOf } from './peer-certificate.js';

/**
 * The one API token a request presents, from x-api-key or Authorization (Bearer, or a keygate
 * token under another scheme or bare: request/scan-headers.ts reads it). Either header twice,
 * or two different tokens, is ambiguous; none is `{}`. `foreignBearer` says what an
 * Authorization credential that is not a keygate token means next to x-api-key: on the public
 * listener it may be the upstream's own credential and travels on ('upstream'); on the admin
 * listener, which forwards nothing, it can only be a second credential ('ambiguous').
 */
export function presentedToken(h: Pick<ScannedHeaders, 'apiKey' | 'apiKeyCount' | 'authToken' | 'authorizationCount'>, foreignBearer: 'upstream' | 'ambiguous'): { token?: string; error?: KeygateError } {
  if (h.apiKeyCount > 1 || h.authorizationCount > 1) return { error: kgError('KG_ERR_CREDENTIAL_AMBIGUOUS') };
  const bearer = h.authToken;
  let token: string | undefined;
  if (h.apiKey !== undefined) {
    token = h.apiKey.trim();
    if (bearer !== undefined && bearer !== token && (foreignBearer === 'ambiguous' || bearer.startsWith('kg_'))) return { error: kgError('KG_ERR_CREDENTIAL_AMBIGUOUS') };
  } else {
    token = bearer;
  }
  return token ? { token } : {};
}

export interface Found {
  /** Set as soon as the credential is known, also when it is refused (audited with its id). */
  entry?: Principal;
  peer?: PeerIdentity;
  error?: KeygateError;
}

/**
 * A token minted for another environment (or none) than this keygate's. The detail names the
 * token's own environment only — what the caller already holds in its prefix — never this
 * deployment's (SPEC §5).
 */
export function wrongEnvironment(tokenEnvironment: string | null): KeygateError {
  return new KeygateError(
    'KG_ERR_TOKEN_WRONG_ENVIRONMENT',
    tokenEnvironment ? `The API token belongs to environment "${tokenEnvironment}", which this keygate does not serve.` : 'The API token has no environment, and this keygate serves tokens of one.',
  );
}

/**
 * Shape, checksum and environment are checked before any lookup; then one map lookup by the
 * token's SHA-256. The map already compared digests; the constant-time compare keeps the rule
 * that anything derived from a secret is never compared with an early-exit comparison.
 */
export function lookupToken(index: CredentialIndex, environment: string | null, token: string): Found {
  const parsed = parseToken(token);
  if (!parsed.ok) return { error: kgError('KG_ERR_TOKEN_MALFORMED') };
  if (parsed.environment !== environment) return { error: wrongEnvironment(parsed.environment) };
  const digest = hashToken(token);
  const entry = index.tokensByHash.get(digest);
  if (!entry || !entry.token || !sameDigest(entry.token.hash, digest)) return { error: kgError('KG_ERR_TOKEN_UNKNOWN') };
  return { entry };
}

/**
 * Two hex digests compared without an early exit: every character is read whatever the first
 * difference. Done on the stored hex string itself, so that the index keeps no second copy of
 * each digest as bytes (80,000 Buffers, ~10 MB at 100,000 credentials) and a request allocates
 * nothing for the comparison.
 */
export function sameDigest(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

const PEER_ERRORS: Record<'missing' | 'untrusted' | 'expired' | 'revoked', ErrorCode> = {
  missing: 'KG_ERR_CERT_MISSING',
  untrusted: 'KG_ERR_CERT_UNTRUSTED',
  expired: 'KG_ERR_CERT_EXPIRED',
  revoked: 'KG_ERR_CERT_REVOKED',
};

/** The verified client certificate of this connection → its binding. */
export function lookupCertificate(index: CredentialIndex, socket: TLSSocket | undefined, nowMs: number): Found {
  if (!socket) return { error: kgError('KG_ERR_CERT_MISSING') };
  const result = peerOf(socket);
  if (!result.ok) return { error: kgError(PEER_ERRORS[result.reason]) };
  const peer = result.peer;
  // Verified at the handshake; a keep-alive connection can outlive the certificate.
  if (peer.notAfterMs <= nowMs || peer.notBeforeMs > nowMs) return { peer, error: kgError('KG_ERR_CERT_EXPIRED') };
  const entry = findBinding(index, peer);
  if (!entry) return { peer, error: kgError('KG_ERR_CERT_UNBOUND') };
  return { peer, entry };
}

/**
 * The most specific binding decides: fingerprint, then an exact URI SAN, then a URI pattern
 * (most specific pattern first, see matching/wildcard.ts), then a DNS SAN, then the subject
 * CN. There is no fall-through: when the deciding binding is ended or its account disabled,
 * the request is refused even if a less specific binding would match. Ending the fingerprint
 * binding of one leaked certificate must cut that certificate off, even while the account's
 * CN or SPIFFE binding keeps admitting its successors.
 */
export function findBinding(index: CredentialIndex, peer: PeerIdentity): Principal | undefined {
  const byFp = index.certByFingerprint.get(peer.fingerprint);
  if (byFp) return byFp;
  for (const u of peer.uris) {
    const e = index.certByURI.get(u);
    if (e) return e;
  }
  if (peer.uris.length) for (const p of index.certURIPatterns) for (const u of peer.uris) if (p.matches(u)) return p.entry;
  for (const d of peer.dns) {
    const e = index.certByDNS.get(d.toLowerCase());
    if (e) return e;
  }
  if (peer.cn !== undefined) return index.certByCN.get(peer.cn);
  return undefined;
}

/** A known credential admits its caller only while it and its account are live. */
export function liveness(entry: Principal, nowMs: number): KeygateError | undefined {
  if (entry.revoked) return kgError('KG_ERR_TOKEN_REVOKED');
  if (entry.expiresMs !== null && entry.expiresMs <= nowMs) return kgError(entry.kind === 'cert' ? 'KG_ERR_CERT_BINDING_ENDED' : 'KG_ERR_TOKEN_EXPIRED');
  if (entry.account.disabled) return kgError('KG_ERR_ACCOUNT_DISABLED');
  if (entry.account.endMs !== null && entry.account.endMs <= nowMs) return kgError('KG_ERR_ACCOUNT_ENDED');
  return undefined;
}

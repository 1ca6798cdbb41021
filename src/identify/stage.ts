// ② Identify: who is calling. On an API-key host the token (x-api-key or Authorization:
// Bearer) is checked for format and environment before any lookup, then found by its SHA-256
// in one map lookup. On a client-certificate host the verified certificate is matched to a
// binding. Either way the account and the credential must be live.
import { timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { KeygateError, kgError } from '../errors/keygate-error.js';
import type { ErrorCode } from '../errors/catalog.js';
import { hashToken, parseToken } from '../store/token-format.js';
import type { RequestContext } from '../pipeline/context.js';
import type { CredentialEntry, CredentialIndex } from './credential-index.js';
import { peerOf, type PeerIdentity } from './peer-certificate.js';

const BEARER = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i;

export function identify(ctx: RequestContext): KeygateError | undefined {
  return ctx.mode === 'clientauth' ? identifyByCertificate(ctx) : identifyByToken(ctx);
}

function identifyByToken(ctx: RequestContext): KeygateError | undefined {
  ctx.auth = 'api-key';
  const h = ctx.headers;
  const bearer = h.authorization !== undefined ? BEARER.exec(h.authorization)?.[1] : undefined;
  let token: string | undefined;
  if (h.apiKeyCount > 1 || h.authorizationCount > 1) return kgError('KG_ERR_CREDENTIAL_AMBIGUOUS');
  if (h.apiKey !== undefined) {
    token = h.apiKey.trim();
    // A keygate token in Authorization as well is a second credential, unless it is the same.
    if (bearer !== undefined && bearer.startsWith('kg_') && bearer !== token) return kgError('KG_ERR_CREDENTIAL_AMBIGUOUS');
  } else if (bearer !== undefined) {
    token = bearer;
  }
  if (token === undefined || token === '') return kgError('KG_ERR_CREDENTIAL_MISSING');
  const parsed = parseToken(token);
  if (!parsed.ok) return kgError('KG_ERR_TOKEN_MALFORMED');
  const env = ctx.rt.config.environment;
  if (parsed.environment !== env) {
    return new KeygateError(
      'KG_ERR_TOKEN_WRONG_ENVIRONMENT',
      parsed.environment
        ? `The API token belongs to environment "${parsed.environment}"${env ? `; this is "${env}"` : '; this keygate has no environment'}.`
        : `The API token has no environment; this is "${env}".`,
    );
  }
  const digest = hashToken(token);
  const entry = ctx.rt.credentials.tokensByHash.get(digest);
  // The map is keyed by the digest; the constant-time compare documents that a stored hash is
  // only ever compared as a secret would be.
  if (!entry || !timingSafeEqual(Buffer.from(entry.token!.hash, 'hex'), Buffer.from(digest, 'hex'))) return kgError('KG_ERR_TOKEN_UNKNOWN');
  ctx.credential = entry; // known from here on: audited with its id even when refused
  if (entry.revoked) return kgError('KG_ERR_TOKEN_REVOKED');
  if (entry.expiresMs !== null && entry.expiresMs <= ctx.nowMs) return kgError('KG_ERR_TOKEN_EXPIRED');
  return admit(ctx, entry);
}

const PEER_ERRORS: Record<'missing' | 'untrusted' | 'expired' | 'revoked', ErrorCode> = {
  missing: 'KG_ERR_CERT_MISSING',
  untrusted: 'KG_ERR_CERT_UNTRUSTED',
  expired: 'KG_ERR_CERT_EXPIRED',
  revoked: 'KG_ERR_CERT_REVOKED',
};

function identifyByCertificate(ctx: RequestContext): KeygateError | undefined {
  ctx.auth = 'mtls';
  const result = peerOf(ctx.req.socket as TLSSocket);
  if (!result.ok) return kgError(PEER_ERRORS[result.reason]);
  const peer = result.peer;
  ctx.peer = peer;
  // Verified at the handshake; a keep-alive connection can outlive the certificate.
  if (peer.notAfterMs <= ctx.nowMs || peer.notBeforeMs > ctx.nowMs) return kgError('KG_ERR_CERT_EXPIRED');
  const entry = findBinding(ctx.rt.credentials, peer);
  if (!entry) return kgError('KG_ERR_CERT_UNBOUND');
  ctx.credential = entry;
  if (entry.expiresMs !== null && entry.expiresMs <= ctx.nowMs) return kgError('KG_ERR_CERT_BINDING_ENDED');
  return admit(ctx, entry);
}

/**
 * The most specific binding decides: fingerprint, then an exact URI SAN, then a URI pattern
 * (most specific pattern first, see store/uri-pattern.ts), then a DNS SAN, then the subject
 * CN. There is no fall-through: when the deciding binding is ended or its account disabled,
 * the request is refused even if a less specific binding would match. Ending the fingerprint
 * binding of one leaked certificate must cut that certificate off, even while the account's
 * CN or SPIFFE binding keeps admitting its successors.
 */
export function findBinding(index: CredentialIndex, peer: PeerIdentity): CredentialEntry | undefined {
  const byFp = index.certByFingerprint.get(peer.fingerprint);
  if (byFp) return byFp;
  for (const u of peer.uris) {
    const e = index.certByURI.get(u);
    if (e) return e;
  }
  if (peer.uris.length) for (const p of index.certURIPatterns) for (const u of peer.uris) if (p.regex.test(u)) return p.entry;
  for (const d of peer.dns) {
    const e = index.certByDNS.get(d.toLowerCase());
    if (e) return e;
  }
  if (peer.cn !== undefined) return index.certByCN.get(peer.cn);
  return undefined;
}

function admit(ctx: RequestContext, entry: CredentialEntry): KeygateError | undefined {
  const account = entry.account;
  if (account.disabled) return kgError('KG_ERR_ACCOUNT_DISABLED');
  if (account.endMs !== null && account.endMs <= ctx.nowMs) return kgError('KG_ERR_ACCOUNT_ENDED');
  return undefined;
}

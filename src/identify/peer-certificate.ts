// What a verified client certificate says about its holder, parsed once per TLS connection
// (keep-alive requests reuse it) with @peculiar/x509, which handles SAN encodings that string
// parsing gets wrong.
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { SubjectAlternativeNameExtension, X509Certificate } from '@peculiar/x509';

export interface PeerIdentity {
  /** SHA-256 of the DER certificate, lowercase hex without colons. */
  readonly fingerprint: string;
  readonly subject: string;
  readonly cn: string | undefined;
  readonly dns: readonly string[];
  readonly uris: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** Value of x-forwarded-client-cert, in Envoy's format, built once. */
  readonly xfcc: string;
}

export type PeerResult =
  | { ok: true; peer: PeerIdentity }
  | { ok: false; reason: 'missing' | 'untrusted' | 'expired' | 'revoked' };

const cache = new WeakMap<TLSSocket, PeerResult>();

const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
const REVOKED = new Set(['CERT_REVOKED']);

export function peerOf(socket: TLSSocket): PeerResult {
  let r = cache.get(socket);
  if (!r) cache.set(socket, (r = inspect(socket)));
  return r;
}

function inspect(socket: TLSSocket): PeerResult {
  const x = socket.getPeerX509Certificate?.();
  if (!x) return { ok: false, reason: 'missing' };
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? '');
    if (REVOKED.has(code)) return { ok: false, reason: 'revoked' };
    if (EXPIRED.has(code)) return { ok: false, reason: 'expired' };
    return { ok: false, reason: 'untrusted' };
  }
  try {
    return { ok: true, peer: describeCertificate(x.raw) };
  } catch {
    return { ok: false, reason: 'untrusted' };
  }
}

export function describeCertificate(der: Uint8Array): PeerIdentity {
  const cert = new X509Certificate(der);
  const fingerprint = createHash('sha256').update(der).digest('hex');
  const san = cert.getExtension(SubjectAlternativeNameExtension);
  const dns: string[] = [];
  const uris: string[] = [];
  for (const name of san?.names.items ?? []) {
    if (name.type === 'dns') dns.push(name.value);
    else if (name.type === 'url') uris.push(name.value);
  }
  const cn = cert.subjectName.getField('CN')[0];
  const subject = cert.subject;
  const parts = [`Hash=${fingerprint}`, `Subject=${xfccValue(subject, true)}`];
  for (const u of uris) parts.push(`URI=${xfccValue(u)}`);
  for (const d of dns) parts.push(`DNS=${xfccValue(d)}`);
  return { fingerprint, subject, cn, dns, uris, notBeforeMs: cert.notBefore.getTime(), notAfterMs: cert.notAfter.getTime(), xfcc: parts.join(';') };
}

/** Envoy quotes values holding , ; = or " (and always the Subject), escaping " and \. */
function xfccValue(v: string, alwaysQuote = false): string {
  if (!alwaysQuote && !/[,;="\s\\]/.test(v)) return v;
  return `"${v.replace(/["\\]/g, '\\$&')}"`;
}

// What a verified client certificate says about its holder, parsed once per TLS connection
// (keep-alive requests reuse it) with @peculiar/x509, which handles SAN encodings that string
// parsing gets wrong.
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { SubjectAlternativeNameExtension, X509Certificate } from '@peculiar/x509';
import type { PeerIdentity } from '../vocabulary/principal.js';

export type { PeerIdentity };

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
  // A subject with two CNs names two identities; which one a CN binding should see is a
  // guess, so such a certificate matches no CN binding (fingerprint, SAN bindings still work).
  const cns = cert.subjectName.getField('CN');
  const cn = cns.length === 1 ? cns[0] : undefined;
  const subject = rfc2253(cert.subjectName.toJSON());
  const parts = [`Hash=${fingerprint}`, `Subject=${xfccValue(subject, true)}`];
  for (const u of uris) parts.push(`URI=${xfccValue(u)}`);
  for (const d of dns) parts.push(`DNS=${xfccValue(d)}`);
  return { fingerprint, subject, cn, dns, uris, notBeforeMs: cert.notBefore.getTime(), notAfterMs: cert.notAfter.getTime(), xfcc: parts.join(';') };
}

const ATTRIBUTE_NAMES: Record<string, string> = { E: 'emailAddress' };

/**
 * The subject as Envoy puts it in XFCC: RFC 2253 (OpenSSL's XN_FLAG_RFC2253), i.e. the most
 * specific RDN first, `,` between RDNs, `+` inside multi-valued ones, RFC 4514 escaping.
 */
export function rfc2253(rdns: ReadonlyArray<Record<string, string[]>>): string {
  const escape = (v: string) =>
    v
      .replace(/[\\,+"<>;]/g, '\\$&')
      // Like OpenSSL's ASN1_STRFLGS_ESC_MSB | ESC_CTRL: everything outside printable ASCII as
      // \hh per UTF-8 byte, so the header carries only visible ASCII.
      .replace(/[^\x20-\x7e]/gu, (ch) => [...Buffer.from(ch, 'utf8')].map((b) => '\\' + b.toString(16).padStart(2, '0')).join(''))
      .replace(/^[ #]/, '\\$&')
      .replace(/ $/, '\\ ');
  return [...rdns]
    .reverse()
    .map((rdn) =>
      Object.entries(rdn)
        .flatMap(([type, values]) => values.map((v) => `${ATTRIBUTE_NAMES[type] ?? type}=${escape(v)}`))
        .join('+'),
    )
    .join(',');
}

/** Envoy quotes values holding , ; = or " (and always the Subject), escaping " and \. */
function xfccValue(raw: string, alwaysQuote = false): string {
  // SAN strings are IA5 (ASCII) by definition; a control character would break the header,
  // so anything outside printable ASCII is percent-encoded.
  const v = raw.replace(/[^\x20-\x7e]/gu, (ch) => [...Buffer.from(ch, 'utf8')].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''));
  if (!alwaysQuote && !/[,;="\s\\]/.test(v)) return v;
  return `"${v.replace(/["\\]/g, '\\$&')}"`;
}

// ① TLS material: server certificate and key, client CA bundle(s) and CRL(s), read from disk
// and turned into secure contexts. Built completely before use; a reload that fails keeps the
// previous material (the caller decides), so a half-written file never breaks the listener.
// Everything OpenSSL would only discover at the first handshake (an empty or mismatched key,
// an unparsable CRL, a CA without the CRL that revocation checking will demand) is found here
// and reported with the config path it came from.
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { constants, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import tls from 'node:tls';
import { X509Certificate as PeculiarCertificate, X509Crl } from '@peculiar/x509';
import type { KeygateConfig } from '../config/schema.js';
import { KeygateFault } from '../errors/fault.js';

export interface CertificateInfo {
  /** `crl` entries carry the CRL's nextUpdate: past it OpenSSL refuses every client certificate. */
  kind: 'server' | 'client_ca' | 'crl';
  subject: string;
  notAfterMs: number;
  file: string;
}

/** A server certificate chain and its key, checked against each other. */
export interface ServerIdentity {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly certificates: readonly CertificateInfo[];
  readonly warnings: readonly string[];
  readonly files: readonly string[];
}

/** The trusted issuers of client certificates and their revocation lists. */
export interface ClientTrust {
  /** An explicit (possibly empty) list: without one Node would trust its public root store. */
  readonly ca: readonly Buffer[];
  readonly crl: readonly string[];
  readonly certificates: readonly CertificateInfo[];
  readonly warnings: readonly string[];
  readonly files: readonly string[];
}

export interface TlsMaterial {
  /** Options for the API-key hosts (and connections without SNI). */
  readonly apiOptions: tls.SecureContextOptions;
  /** Options for client-certificate hosts: as above plus the client CAs and CRLs. */
  readonly clientAuthOptions: tls.SecureContextOptions;
  readonly api: tls.SecureContext;
  readonly clientAuth: tls.SecureContext;
  readonly certificates: readonly CertificateInfo[];
  /** Every file this material was read from (to watch). */
  readonly files: readonly string[];
  /** The client CA certificates and key path, for `keygate cert issue`. */
  readonly clientCaConfigured: boolean;
  /** Things that work today but will not for long (an expired CRL, a certificate near its end). */
  readonly warnings: readonly string[];
}

export class TlsMaterialError extends KeygateFault {
  constructor(readonly path: ReadonlyArray<string | number>, message: string) {
    super('KG_ERR_TLS_MATERIAL', message);
  }
}

/**
 * No session resumption (tickets), no renegotiation. Resumption would skip the certificate
 * check: OpenSSL restores the verification result stored in the session, so a session made on
 * an API-key host (or before a CRL or CA change) would come back "authorized" on a
 * client-certificate host, and a TLS 1.2 resumption does not even carry the SNI that picks
 * the mode. Every connection therefore makes a full handshake against the current material;
 * clients keep connections alive instead. Renegotiation could change the peer certificate
 * under a connection whose identity was already decided.
 */
export const SECURE_OPTIONS = constants.SSL_OP_NO_TICKET | constants.SSL_OP_NO_RENEGOTIATION;

function read(file: string, path: ReadonlyArray<string | number>): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TlsMaterialError(path, `cannot read ${file}: ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_CRL = /-----BEGIN (?:X509 )?CRL-----([\s\S]+?)-----END (?:X509 )?CRL-----/g;

export function pemCertificates(pem: string): X509Certificate[] {
  return (pem.match(PEM_CERT) ?? []).map((block) => new X509Certificate(block));
}

const oneLine = (dn: string) => dn.replace(/\n/g, ', ');
/** Distinguished names compare case-insensitively and with folded spaces (as OpenSSL's canonical form does). */
const nameKey = (dn: string) => dn.toLowerCase().replace(/\s+/g, ' ');

function certificatesIn(buf: Buffer, file: string, path: ReadonlyArray<string | number>): X509Certificate[] {
  let certs: X509Certificate[];
  try {
    certs = pemCertificates(buf.toString('utf8'));
  } catch (err) {
    throw new TlsMaterialError(path, `${file}: not a valid PEM certificate (${(err as Error).message})`);
  }
  if (certs.length === 0) throw new TlsMaterialError(path, `${file}: no PEM certificate found`);
  return certs;
}

function info(c: X509Certificate, kind: CertificateInfo['kind'], file: string): CertificateInfo {
  return { kind, subject: oneLine(c.subject), notAfterMs: Date.parse(c.validTo), file };
}

/** The server key, checked against the leaf: a rotation that replaced one file of the pair but not yet the other is refused here. */
function serverKey(buf: Buffer, leaf: X509Certificate, files: { cert: string; key: string }, path: readonly string[]): KeyObject {
  if (buf.toString('utf8').trim() === '') throw new TlsMaterialError(path, `${files.key}: the file is empty`);
  let key: KeyObject;
  try {
    key = createPrivateKey(buf);
  } catch (err) {
    const msg = (err as Error).message;
    throw new TlsMaterialError(path, `${files.key}: not a usable private key (${/passphrase/i.test(msg) ? 'it is encrypted; keygate needs an unencrypted key' : msg})`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsMaterialError(path, `${files.key} does not belong to the certificate in ${files.cert} (a rotation half done? replace both files; the previous pair keeps serving)`);
  }
  return key;
}

interface ParsedCrl {
  pem: string;
  issuer: string;
  nextUpdateMs: number | undefined;
}

/**
 * CRLs as OpenSSL wants them: PEM labelled `X509 CRL`. Also accepted: DER (what most CAs
 * publish at their distribution point) and the `BEGIN CRL` label some tools write.
 */
function crlsIn(buf: Buffer, file: string, path: ReadonlyArray<string | number>): ParsedCrl[] {
  const text = buf.toString('latin1');
  const ders: Buffer[] = [];
  if (text.includes('-----BEGIN')) {
    for (const m of text.matchAll(PEM_CRL)) ders.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
    if (ders.length === 0) throw new TlsMaterialError(path, `${file}: no CRL found (expected -----BEGIN X509 CRL-----, or a DER file)`);
  } else {
    if (buf.length === 0) throw new TlsMaterialError(path, `${file}: the file is empty`);
    ders.push(buf);
  }
  return ders.map((der) => {
    let crl: X509Crl;
    try {
      crl = new X509Crl(der);
    } catch (err) {
      throw new TlsMaterialError(path, `${file}: not a valid CRL (${(err as Error).message})`);
    }
    const pem = `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END X509 CRL-----\n`;
    return { pem, issuer: crl.issuerName.toString(), nextUpdateMs: crl.nextUpdate?.getTime() };
  });
}

/** The server certificate and key at `path` in the config (listen.tls, admin.tls). */
export function loadServerIdentity(tlsCfg: { cert: string; key: string; minVersion?: 'TLSv1.2' | 'TLSv1.3' }, path: readonly string[], nowMs = Date.now()): ServerIdentity {
  const warnings: string[] = [];
  const cert = read(tlsCfg.cert, [...path, 'cert']);
  const key = read(tlsCfg.key, [...path, 'key']);
  const chain = certificatesIn(cert, tlsCfg.cert, [...path, 'cert']);
  const leaf = chain[0]!;
  serverKey(key, leaf, tlsCfg, [...path, 'key']);
  if (Date.parse(leaf.validTo) <= nowMs) warnings.push(`the server certificate in ${tlsCfg.cert} expired at ${new Date(leaf.validTo).toISOString()}`);
  const minVersion = tlsCfg.minVersion ?? 'TLSv1.2';
  try {
    tls.createSecureContext({ cert, key, minVersion, secureOptions: SECURE_OPTIONS });
  } catch (err) {
    throw new TlsMaterialError(path, `server certificate and key: ${(err as Error).message}`);
  }
  return { cert, key, minVersion, certificates: [info(leaf, 'server', tlsCfg.cert)], warnings, files: [tlsCfg.cert, tlsCfg.key] };
}

/** listen.clientAuth: CA bundle(s) and CRL(s). */
export function loadClientTrust(clientAuth: KeygateConfig['listen']['clientAuth'], nowMs = Date.now()): ClientTrust {
  const warnings: string[] = [];
  const certificates: CertificateInfo[] = [];
  const files: string[] = [];
  const ca: Buffer[] = [];
  const caCerts: X509Certificate[] = [];
  (clientAuth.ca ?? []).forEach((file, i) => {
    const p = clientAuth.ca!.length > 1 ? ['listen', 'clientAuth', 'ca', i] : ['listen', 'clientAuth', 'ca'];
    const buf = read(file, p);
    for (const c of certificatesIn(buf, file, p)) {
      certificates.push(info(c, 'client_ca', file));
      caCerts.push(c);
      if (Date.parse(c.validTo) <= nowMs) warnings.push(`client CA "${oneLine(c.subject)}" in ${file} expired at ${new Date(c.validTo).toISOString()}; certificates it issued are refused`);
    }
    ca.push(buf);
    files.push(file);
  });
  const crl: string[] = [];
  const crlIssuers = new Set<string>();
  (clientAuth.crl ?? []).forEach((file, i) => {
    const p = clientAuth.crl!.length > 1 ? ['listen', 'clientAuth', 'crl', i] : ['listen', 'clientAuth', 'crl'];
    for (const c of crlsIn(read(file, p), file, p)) {
      crl.push(c.pem);
      crlIssuers.add(nameKey(c.issuer));
      if (c.nextUpdateMs !== undefined) {
        certificates.push({ kind: 'crl', subject: c.issuer, notAfterMs: c.nextUpdateMs, file });
        if (c.nextUpdateMs <= nowMs) warnings.push(`the CRL of "${c.issuer}" in ${file} is past its nextUpdate (${new Date(c.nextUpdateMs).toISOString()}); every certificate it covers is refused until a fresh CRL is installed`);
      }
    }
    files.push(file);
  });
  if (crl.length) {
    // Node turns on X509_V_FLAG_CRL_CHECK_ALL with any CRL: every CA in a client's chain must
    // have a current CRL, or its certificates fail with "unable to get certificate CRL". Say
    // so now rather than refuse every client of that CA at run time.
    for (const c of caCerts) {
      const subject = new PeculiarCertificate(c.raw).subjectName.toString();
      if (!crlIssuers.has(nameKey(subject))) {
        throw new TlsMaterialError(['listen', 'clientAuth', 'crl'], `no CRL from client CA "${subject}": with crl set, every CA in a client's chain needs its current CRL (revocation is checked for the whole chain), or all certificates it issued are refused`);
      }
    }
  }
  return { ca, crl, certificates, warnings, files };
}

/** Secure contexts for a listener: the identity, plus the client trust for client-certificate hosts. */
export function composeMaterial(identity: ServerIdentity, trust: ClientTrust): TlsMaterial {
  const apiOptions: tls.SecureContextOptions = { cert: identity.cert, key: identity.key, minVersion: identity.minVersion, secureOptions: SECURE_OPTIONS };
  const api = tls.createSecureContext(apiOptions);
  const clientAuthOptions: tls.SecureContextOptions = { ...apiOptions, ca: [...trust.ca], ...(trust.crl.length ? { crl: [...trust.crl] } : {}) };
  let clientAuthCtx: tls.SecureContext;
  try {
    clientAuthCtx = tls.createSecureContext(clientAuthOptions);
  } catch (err) {
    throw new TlsMaterialError(['listen', 'clientAuth'], `client CA or CRL: ${(err as Error).message}`);
  }
  return {
    apiOptions,
    clientAuthOptions,
    api,
    clientAuth: clientAuthCtx,
    certificates: [...identity.certificates, ...trust.certificates],
    files: [...identity.files, ...trust.files],
    clientCaConfigured: trust.ca.length > 0,
    warnings: [...identity.warnings, ...trust.warnings],
  };
}

/** Everything the public listener needs, read at once (`keygate check`, start). */
export function loadTlsMaterial(config: KeygateConfig, nowMs = Date.now()): TlsMaterial {
  return composeMaterial(loadServerIdentity(config.listen.tls, ['listen', 'tls'], nowMs), loadClientTrust(config.listen.clientAuth, nowMs));
}

/** The admin listener's options: its own identity (admin.tls) and the proxy's client trust. */
export function composeAdminOptions(identity: ServerIdentity, trust: ClientTrust): { readonly options: tls.SecureContextOptions } {
  const options: tls.SecureContextOptions = { cert: identity.cert, key: identity.key, minVersion: identity.minVersion, secureOptions: SECURE_OPTIONS, ca: [...trust.ca], ...(trust.crl.length ? { crl: [...trust.crl] } : {}) };
  tls.createSecureContext(options);
  return { options };
}

// ① TLS material: server certificate and key, client CA bundle(s) and CRL(s), read from disk
// and turned into secure contexts. Built completely before use; a reload that fails keeps the
// previous material (the caller decides), so a half-written file never breaks the listener.
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { KeygateConfig } from '../config/schema.js';

export interface CertificateInfo {
  kind: 'server' | 'client_ca';
  subject: string;
  notAfterMs: number;
  file: string;
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
}

export class TlsMaterialError extends Error {
  constructor(readonly path: ReadonlyArray<string | number>, message: string) {
    super(message);
  }
}

function read(file: string, path: ReadonlyArray<string | number>): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TlsMaterialError(path, `cannot read ${file}: ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function pemCertificates(pem: string): X509Certificate[] {
  return (pem.match(PEM_CERT) ?? []).map((block) => new X509Certificate(block));
}

function certificatesIn(buf: Buffer, file: string, path: ReadonlyArray<string | number>, kind: CertificateInfo['kind']): CertificateInfo[] {
  let certs: X509Certificate[];
  try {
    certs = pemCertificates(buf.toString('utf8'));
  } catch (err) {
    throw new TlsMaterialError(path, `${file}: not a valid PEM certificate (${(err as Error).message})`);
  }
  if (certs.length === 0) throw new TlsMaterialError(path, `${file}: no PEM certificate found`);
  return certs.map((c) => ({ kind, subject: c.subject.replace(/\n/g, ', '), notAfterMs: Date.parse(c.validTo), file }));
}

export function loadTlsMaterial(config: KeygateConfig): TlsMaterial {
  const { tls: tlsCfg, clientAuth } = config.listen;
  const cert = read(tlsCfg.cert, ['listen', 'tls', 'cert']);
  const key = read(tlsCfg.key, ['listen', 'tls', 'key']);
  const certificates: CertificateInfo[] = [certificatesIn(cert, tlsCfg.cert, ['listen', 'tls', 'cert'], 'server')[0]!];
  const files = [tlsCfg.cert, tlsCfg.key];
  const apiOptions: tls.SecureContextOptions = { cert, key, minVersion: tlsCfg.minVersion };
  let api: tls.SecureContext;
  try {
    api = tls.createSecureContext(apiOptions);
  } catch (err) {
    throw new TlsMaterialError(['listen', 'tls'], `server certificate and key: ${(err as Error).message}`);
  }
  // An explicit (possibly empty) CA list: without one Node would trust its public root store
  // for client certificates.
  const ca: Buffer[] = [];
  (clientAuth.ca ?? []).forEach((file, i) => {
    const p = clientAuth.ca!.length > 1 ? ['listen', 'clientAuth', 'ca', i] : ['listen', 'clientAuth', 'ca'];
    const buf = read(file, p);
    certificates.push(...certificatesIn(buf, file, p, 'client_ca'));
    ca.push(buf);
    files.push(file);
  });
  const crl: Buffer[] = [];
  (clientAuth.crl ?? []).forEach((file, i) => {
    const p = clientAuth.crl!.length > 1 ? ['listen', 'clientAuth', 'crl', i] : ['listen', 'clientAuth', 'crl'];
    crl.push(read(file, p));
    files.push(file);
  });
  const clientAuthOptions: tls.SecureContextOptions = { ...apiOptions, ca, ...(crl.length ? { crl } : {}) };
  let clientAuthCtx: tls.SecureContext;
  try {
    clientAuthCtx = tls.createSecureContext(clientAuthOptions);
  } catch (err) {
    throw new TlsMaterialError(['listen', 'clientAuth'], `client CA or CRL: ${(err as Error).message}`);
  }
  return { apiOptions, clientAuthOptions, api, clientAuth: clientAuthCtx, certificates, files, clientCaConfigured: ca.length > 0 };
}

// Certificates minted in the test, with chosen names and dates. Short validity by default.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createAuthority, issueClientCertificate, issueServerCertificate, type Authority, type Issued, type KeyType } from '../../src/pki/pki.js';

export type { Authority, Issued };

const DAY = 86_400_000;

export async function mintCa(commonName = 'test CA', opts: { keyType?: KeyType; days?: number } = {}): Promise<Issued & { authority: Authority }> {
  return createAuthority({ commonName, days: opts.days ?? 2, keyType: opts.keyType ?? 'ec' });
}

export function mintServer(ca: Authority, hosts: string[], opts: { days?: number } = {}): Promise<Issued> {
  return issueServerCertificate(ca, { hosts, days: opts.days ?? 2 });
}

export interface ClientOptions {
  commonName?: string;
  dns?: string[];
  uris?: string[];
  days?: number;
  /** Issue as if at this time (e.g. in the past, for an expired certificate). */
  now?: Date;
  keyType?: KeyType;
}

export function mintClient(ca: Authority, opts: ClientOptions = {}): Promise<Issued> {
  return issueClientCertificate(ca, { commonName: opts.commonName ?? 'test-client', dns: opts.dns, uris: opts.uris, days: opts.days ?? 2, keyType: opts.keyType, now: opts.now });
}

/** A certificate that expired yesterday. */
export function mintExpiredClient(ca: Authority, opts: ClientOptions = {}): Promise<Issued> {
  return mintClient(ca, { ...opts, now: new Date(Date.now() - 3 * DAY), days: 2 });
}

/** A CRL signed by `ca` revoking these serials (hex). */
export async function mintCrl(ca: Authority, revokedSerials: string[]): Promise<string> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + DAY),
    entries: revokedSerials.map((serialNumber) => ({ serialNumber, revocationDate: new Date(Date.now() - 60_000), reason: x509.X509CrlReason.keyCompromise })),
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ca.signingAlgorithm,
  });
  return crl.toString('pem') + '\n';
}

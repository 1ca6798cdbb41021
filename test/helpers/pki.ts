// Certificates minted in the test, with chosen names and dates. Short validity by default.
import { createAuthority, issueClientCertificate, issueCrl, issueIntermediateAuthority, issueServerCertificate, type Authority, type Issued, type KeyType } from '../../src/pki/pki.js';

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

/** A CRL signed by `ca` revoking these serials (hex), valid from a minute ago for a day. */
export function mintCrl(ca: Authority, revokedSerials: string[]): Promise<string> {
  return issueCrl(ca, { revoked: revokedSerials.map((serial) => ({ serial })), nextUpdate: new Date(Date.now() + DAY) });
}

/** A CRL whose nextUpdate has passed (OpenSSL then refuses every certificate it covers). */
export function mintStaleCrl(ca: Authority): Promise<string> {
  return issueCrl(ca, { thisUpdate: new Date(Date.now() - 2 * DAY), nextUpdate: new Date(Date.now() - DAY) });
}

/** An intermediate CA under `parent` (short validity), for chains the client must send. */
export function mintIntermediate(parent: Authority, commonName = 'test intermediate CA', opts: { keyType?: KeyType; days?: number } = {}): Promise<Issued & { authority: Authority }> {
  return issueIntermediateAuthority(parent, { commonName, days: opts.days ?? 2, keyType: opts.keyType ?? 'ec' });
}

// Minting certificates for the dev PKI (`keygate certs init`, `keygate dev`) and client
// certificates (`keygate cert issue`), with @peculiar/x509 over Node's WebCrypto. ECDSA P-256
// by default; RSA-2048 where a consumer needs it (PKCS#12 bundles, see pkcs12.ts).
import 'reflect-metadata';
import { createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export type KeyType = 'ec' | 'rsa';

const EC: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const RSA: webcrypto.RsaHashedKeyGenParams = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };

export interface Issued {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the DER certificate, lowercase hex. */
  fingerprint: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export interface Authority {
  cert: x509.X509Certificate;
  certPem: string;
  keys: CryptoKeyPair;
  signingAlgorithm: Algorithm;
}

const DAY_MS = 86_400_000;

async function generateKeys(type: KeyType): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(type === 'ec' ? EC : RSA, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

function serialNumber(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive INTEGER
  return b.toString('hex');
}

function window(days: number, now: Date): { notBefore: Date; notAfter: Date } {
  // Back-date by five minutes so a client with a slightly slow clock accepts it at once.
  return { notBefore: new Date(now.getTime() - 5 * 60_000), notAfter: new Date(now.getTime() + days * DAY_MS) };
}

function describe(cert: x509.X509Certificate, keyPem: string): Issued {
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem,
    fingerprint: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
    serial: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

const dnEscape = (v: string) => v.replace(/([,+"\\<>;=#])/g, '\\$1');
/** Most general RDN first (O, then CN), as CAs conventionally encode it; RFC 2253 output (XFCC) then reads "CN=…,O=…". */
const distinguishedName = (cn: string, o?: string) => `${o ? `O=${dnEscape(o)}, ` : ''}CN=${dnEscape(cn)}`;

export async function createAuthority(opts: { commonName: string; organization?: string; days?: number; keyType?: KeyType; now?: Date }): Promise<Issued & { authority: Authority }> {
  const keys = await generateKeys(opts.keyType ?? 'ec');
  const signingAlgorithm = (opts.keyType ?? 'ec') === 'ec' ? EC : RSA;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: distinguishedName(opts.commonName, opts.organization),
    ...window(opts.days ?? 3650, opts.now ?? new Date()),
    keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = await keyToPem(keys.privateKey);
  return { ...describe(cert, keyPem), authority: { cert, certPem: cert.toString('pem') + '\n', keys, signingAlgorithm } };
}

/**
 * An intermediate CA signed by `parent` (path length 0: it signs leaves only). Company PKIs
 * usually issue client certificates from one; keygate trusts the root and the client sends
 * the intermediate in its chain.
 */
export async function issueIntermediateAuthority(parent: Authority, opts: { commonName: string; organization?: string; days?: number; keyType?: KeyType; now?: Date }): Promise<Issued & { authority: Authority }> {
  const keyType = opts.keyType ?? 'ec';
  const keys = await generateKeys(keyType);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: distinguishedName(opts.commonName, opts.organization),
    issuer: parent.cert.subject,
    ...window(opts.days ?? 1825, opts.now ?? new Date()),
    publicKey: keys.publicKey,
    signingKey: parent.keys.privateKey,
    signingAlgorithm: parent.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(parent.keys.publicKey),
    ],
  });
  const keyPem = await keyToPem(keys.privateKey);
  const certPem = cert.toString('pem') + '\n';
  return { ...describe(cert, keyPem), authority: { cert, certPem, keys, signingAlgorithm: keyType === 'ec' ? EC : RSA } };
}

/** Loads a CA certificate and its PKCS#8 (or PKCS#1 / SEC1) private key from PEM. */
export async function loadAuthority(certPem: string, keyPem: string): Promise<Authority> {
  const cert = new x509.X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  const type = key.asymmetricKeyType;
  if (type !== 'ec' && type !== 'rsa') throw new Error(`unsupported CA key type ${type}; use an EC P-256 or RSA key`);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const signingAlgorithm = type === 'ec' ? EC : RSA;
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, signingAlgorithm, false, ['sign']);
  const publicKey = await cert.publicKey.export(signingAlgorithm, ['verify']);
  return { cert, certPem: cert.toString('pem') + '\n', keys: { privateKey, publicKey } as unknown as CryptoKeyPair, signingAlgorithm };
}

async function issue(
  ca: Authority,
  opts: { subject: string; days: number; keyType: KeyType; usage: 'server' | 'client'; dns?: string[]; ips?: string[]; uris?: string[]; now?: Date },
): Promise<Issued> {
  const keys = await generateKeys(opts.keyType);
  const names: x509.JsonGeneralName[] = [
    ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const keyUsage = x509.KeyUsageFlags.digitalSignature | (opts.keyType === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: opts.subject,
    issuer: ca.cert.subject,
    ...window(opts.days, opts.now ?? new Date()),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(keyUsage, true),
      new x509.ExtendedKeyUsageExtension([opts.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  return describe(cert, await keyToPem(keys.privateKey));
}

export function issueServerCertificate(ca: Authority, opts: { hosts: string[]; days?: number; keyType?: KeyType; now?: Date }): Promise<Issued> {
  const dns = opts.hosts.filter((h) => isIP(h) === 0);
  const ips = opts.hosts.filter((h) => isIP(h) !== 0);
  return issue(ca, { subject: `CN=${dnEscape(opts.hosts[0] ?? 'localhost')}`, days: opts.days ?? 825, keyType: opts.keyType ?? 'ec', usage: 'server', dns, ips, ...(opts.now ? { now: opts.now } : {}) });
}

export function issueClientCertificate(ca: Authority, opts: { commonName: string; organization?: string; days?: number; keyType?: KeyType; dns?: string[]; uris?: string[]; now?: Date }): Promise<Issued> {
  return issue(ca, {
    subject: distinguishedName(opts.commonName, opts.organization),
    days: opts.days ?? 90,
    keyType: opts.keyType ?? 'ec',
    usage: 'client',
    dns: opts.dns ?? [],
    uris: opts.uris ?? [],
    ...(opts.now ? { now: opts.now } : {}),
  });
}

/**
 * A CRL signed by `ca`, PEM labelled `X509 CRL` as OpenSSL reads it (@peculiar/x509 writes
 * `CRL`, which OpenSSL refuses). `nextUpdate` defaults to 7 days after `thisUpdate`.
 */
export async function issueCrl(ca: Authority, opts: { revoked?: Array<{ serial: string; at?: Date }>; thisUpdate?: Date; nextUpdate?: Date } = {}): Promise<string> {
  const thisUpdate = opts.thisUpdate ?? new Date(Date.now() - 60_000);
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate,
    nextUpdate: opts.nextUpdate ?? new Date(thisUpdate.getTime() + 7 * DAY_MS),
    entries: (opts.revoked ?? []).map((r) => ({ serialNumber: r.serial, revocationDate: r.at ?? thisUpdate, reason: x509.X509CrlReason.keyCompromise })),
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ca.signingAlgorithm,
  });
  return crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----') + '\n';
}

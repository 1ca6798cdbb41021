// PKCS#12 bundles for `keygate cert issue --p12`: the client certificate, its RSA key and the
// issuing chain in one password-protected file, for clients that take a .p12/.pfx (Java key
// stores, Windows, Python's requests-pkcs12, Node's `pfx` option).
//
// node-forge encrypts the key bag and derives the MAC key; the certificate bags are built here
// from the certificates' own DER. forge would re-encode a certificate from its parsed fields,
// and for a certificate signed with ECDSA (keygate's CAs are P-256 by default) it writes a NULL
// algorithm parameter the signature did not cover, which OpenSSL then rejects with "certificate
// signature failure". forge handles RSA private keys only, which is why --p12 issues RSA-2048.
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

const { asn1, pki } = forge;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;

export interface Pkcs12Input {
  certPem: string;
  keyPem: string;
  /** Issuer certificates to include after the leaf (intermediates first). */
  chainPems?: string[];
  friendlyName: string;
  password: string;
  /** PBKDF2 and MAC iterations. Default 10000. */
  iterations?: number;
}

/**
 * A password of 128 random bits in base64url (22 characters): strong enough for PBKDF2 with
 * the iteration count below, and free of characters a shell or a Java keystore tool trips on.
 */
export function generatePassword(): string {
  return randomBytes(16).toString('base64url');
}

/** forge's PKCS#12 key derivation (RFC 7292 appendix B), present at run time but not in its typings. */
const pkcs12Kdf = forge.pkcs12 as unknown as { generateKey(password: string, salt: forge.util.ByteBuffer, id: number, iterations: number, bytes: number): forge.util.ByteBuffer };

const oid = (id: string) => asn1.create(U, T.OID, false, asn1.oidToDer(id).getBytes());
const octets = (bytes: string) => asn1.create(U, T.OCTETSTRING, false, bytes);
const seq = (items: forge.asn1.Asn1[]) => asn1.create(U, T.SEQUENCE, true, items);
const explicit0 = (inner: forge.asn1.Asn1) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
const attribute = (id: string, value: forge.asn1.Asn1) => seq([oid(id), asn1.create(U, T.SET, true, [value])]);
/** PKCS#7 ContentInfo of type data. */
const dataContent = (inner: forge.asn1.Asn1) => seq([oid(pki.oids.data!), explicit0(octets(asn1.toDer(inner).getBytes()))]);

export function createPkcs12(input: Pkcs12Input): Buffer {
  const iterations = input.iterations ?? 10_000;
  const leaf = new X509Certificate(input.certPem);
  const chain = (input.chainPems ?? []).map((pem) => new X509Certificate(pem));
  // localKeyId pairs the key with its certificate: the SHA-1 of the certificate, as OpenSSL does.
  const localKeyId = createHash('sha1').update(leaf.raw).digest('binary');
  const attrs = asn1.create(U, T.SET, true, [attribute(pki.oids.localKeyId!, octets(localKeyId)), attribute(pki.oids.friendlyName!, asn1.create(U, T.BMPSTRING, false, input.friendlyName))]);

  const certBags = [leaf, ...chain].map((c, i) =>
    seq([oid(pki.oids.certBag!), explicit0(seq([oid(pki.oids.x509Certificate!), explicit0(octets(c.raw.toString('binary')))])), ...(i === 0 ? [attrs] : [])]),
  );
  const key = pki.privateKeyFromPem(input.keyPem) as forge.pki.rsa.PrivateKey;
  const encryptedKey = pki.encryptPrivateKeyInfo(pki.wrapRsaPrivateKey(pki.privateKeyToAsn1(key)), input.password, { algorithm: 'aes256', count: iterations, saltSize: 16 });
  const keyBag = seq([oid(pki.oids.pkcs8ShroudedKeyBag!), explicit0(encryptedKey), attrs]);
  // AES-256-CBC under PBES2/PBKDF2 for the key is what OpenSSL 3 writes by default; the
  // certificates stay unencrypted, as most tools write them.
  const safe = seq([dataContent(seq(certBags)), dataContent(seq([keyBag]))]);
  const safeDer = asn1.toDer(safe).getBytes();

  // MacData: HMAC-SHA1 under a key from the PKCS#12 KDF (ID 3), as every reader accepts.
  const macSalt = randomBytes(16).toString('binary');
  const macKey = pkcs12Kdf.generateKey(input.password, forge.util.createBuffer(macSalt), 3, iterations, 20);
  const hmac = forge.hmac.create();
  hmac.start('sha1', macKey);
  hmac.update(safeDer);
  const macData = seq([
    seq([seq([oid(pki.oids.sha1!), asn1.create(U, T.NULL, false, '')]), octets(hmac.digest().getBytes())]),
    octets(macSalt),
    asn1.create(U, T.INTEGER, false, asn1.integerToDer(iterations).getBytes()),
  ]);
  const pfx = seq([asn1.create(U, T.INTEGER, false, asn1.integerToDer(3).getBytes()), seq([oid(pki.oids.data!), explicit0(octets(safeDer))]), macData]);
  return Buffer.from(asn1.toDer(pfx).getBytes(), 'binary');
}

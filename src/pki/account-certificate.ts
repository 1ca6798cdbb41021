// `keygate cert issue`: a key pair and client certificate for a service account, signed by
// the configured client CA, written to a folder and bound to the account by fingerprint in
// the same step, so a running proxy admits it within a second.
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeygateConfig } from '../config/schema.js';
import { pemCertificates } from '../listener/tls-material.js';
import { bindCertificate } from '../store/cert-operations.js';
import { findAccount, OperationError } from '../store/operations.js';
import type { CertBindingRecord, CredentialStore } from '../store/types.js';
import { writeKey } from './dev-pki.js';
import { createPkcs12, generatePassword } from './pkcs12.js';
import { issueClientCertificate, loadAuthority, type Issued, type KeyType } from './pki.js';

export interface AccountCertificate {
  issued: Issued;
  binding: CertBindingRecord;
  /** Leaf, then the issuing CA when it is an intermediate (what the client must send). */
  certFile: string;
  keyFile: string;
  /** With `p12`: the bundle and its password (shown once, never stored). */
  p12?: { file: string; password: string };
}

export interface IssueOptions {
  account: string;
  days?: number;
  outDir: string;
  keyType?: KeyType;
  nickname?: string;
  scopes?: string[] | null;
  policy?: string | null;
  /** Also write a password-protected PKCS#12 (forces an RSA key). */
  p12?: boolean;
  /** Overwrite files of an earlier issue for the same account. */
  force?: boolean;
  now?: Date;
}

export function fileStem(account: string): string {
  return account.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'client';
}

/** The CA certificate in the configured bundle(s) that `caKey` belongs to. */
async function issuingCa(config: KeygateConfig): Promise<{ certPem: string; keyPem: string; chain: string[] }> {
  const ca = config.listen.clientAuth;
  if (!ca.ca?.length || !ca.caKey) throw new OperationError('invalid', 'listen.clientAuth.ca and listen.clientAuth.caKey must be set to issue client certificates');
  const keyPem = await readFile(ca.caKey, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new OperationError('invalid', `cannot read listen.clientAuth.caKey ${ca.caKey}: ${err.code ?? err.message}`);
  });
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new OperationError('invalid', `listen.clientAuth.caKey ${ca.caKey} is not a usable private key (${(err as Error).message})`);
  }
  const bundle: X509Certificate[] = [];
  for (const file of ca.ca) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new OperationError('invalid', `cannot read listen.clientAuth.ca ${file}: ${err.code ?? err.message}`);
    });
    bundle.push(...pemCertificates(text));
  }
  const cert = bundle.find((c) => c.ca && c.checkPrivateKey(key));
  if (!cert) throw new OperationError('invalid', `listen.clientAuth.caKey ${ca.caKey} belongs to no CA certificate in listen.clientAuth.ca`);
  // An intermediate issuer travels with the leaf, up to (not including) a root keygate trusts.
  const chain: string[] = [];
  let at = cert;
  while (!at.checkIssued(at) && chain.length < 5) {
    chain.push(at.toString());
    const parent = bundle.find((c) => c !== at && at.checkIssued(c));
    if (!parent) break;
    at = parent;
  }
  return { certPem: cert.toString(), keyPem, chain };
}

export async function issueAccountCertificate(config: KeygateConfig, store: CredentialStore, opts: IssueOptions): Promise<AccountCertificate> {
  const now = opts.now ?? new Date();
  const days = opts.days ?? 90;
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new OperationError('invalid', `--days must be a whole number from 1 to 3650 (got ${opts.days})`);
  findAccount(await store.read(), opts.account); // fail before minting anything
  const stem = fileStem(opts.account);
  const certFile = join(opts.outDir, `${stem}.crt`);
  const keyFile = join(opts.outDir, `${stem}.key`);
  const p12File = join(opts.outDir, `${stem}.p12`);
  const targets = [certFile, keyFile, ...(opts.p12 ? [p12File] : [])];
  const existing = targets.filter((f) => existsSync(f));
  if (existing.length && !opts.force) throw new OperationError('conflict', `${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; choose another --out or pass --force to replace`);
  const ca = await issuingCa(config);
  const authority = await loadAuthority(ca.certPem, ca.keyPem);
  const keyType: KeyType = opts.p12 ? 'rsa' : (opts.keyType ?? 'ec');
  const issued = await issueClientCertificate(authority, { commonName: opts.account, organization: 'keygate service account', days, keyType, now });

  // Files first (under temporary names), binding second, then the files take their names: a
  // binding never points at a key nobody has, and a failed issue leaves earlier files alone.
  await mkdir(opts.outDir, { recursive: true });
  const tmp = (f: string) => `${f}.${randomBytes(4).toString('hex')}.tmp`;
  const staged = new Map(targets.map((f) => [f, tmp(f)]));
  const discard = () => Promise.all([...staged.values()].map((f) => rm(f, { force: true })));
  let p12: AccountCertificate['p12'];
  let binding: CertBindingRecord;
  try {
    await writeFile(staged.get(certFile)!, issued.certPem + ca.chain.join(''));
    await writeKey(staged.get(keyFile)!, issued.keyPem);
    if (opts.p12) {
      const password = generatePassword();
      const der = createPkcs12({ certPem: issued.certPem, keyPem: issued.keyPem, chainPems: ca.chain, friendlyName: `keygate ${opts.account}`, password });
      await writeKey(staged.get(p12File)!, der);
      p12 = { file: p12File, password };
    }
    binding = await store.update((data) =>
      bindCertificate(
        data,
        {
          account: opts.account,
          match: 'fingerprint',
          value: issued.fingerprint,
          nickname: opts.nickname ?? `issued ${now.toISOString().slice(0, 10)}`,
          endDate: issued.notAfter.toISOString(),
          scopes: opts.scopes ?? null,
          policy: opts.policy ?? null,
          serial: issued.serial,
          notAfter: issued.notAfter.toISOString(),
        },
        { config, now },
      ),
    );
  } catch (err) {
    await discard();
    throw err;
  }
  for (const [final, temp] of staged) await rename(temp, final);
  return { issued, binding, certFile, keyFile, ...(p12 ? { p12 } : {}) };
}

// `keygate cert issue`: a key pair and client certificate for a service account, signed by
// the configured client CA, written to a folder and bound to the account by fingerprint in
// the same step, so a running proxy admits it within a second.
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeygateConfig } from '../config/schema.js';
import { bindCertificate } from '../store/cert-operations.js';
import { findAccount, OperationError } from '../store/operations.js';
import type { CertBindingRecord, CredentialStore } from '../store/types.js';
import { writeKey } from './dev-pki.js';
import { issueClientCertificate, loadAuthority, type Issued, type KeyType } from './pki.js';

export interface AccountCertificate {
  issued: Issued;
  binding: CertBindingRecord;
  certFile: string;
  keyFile: string;
}

export function fileStem(account: string): string {
  return account.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'client';
}

export async function issueAccountCertificate(
  config: KeygateConfig,
  store: CredentialStore,
  opts: { account: string; days?: number; outDir: string; keyType?: KeyType; nickname?: string; now?: Date },
): Promise<AccountCertificate> {
  const ca = config.listen.clientAuth;
  if (!ca.ca?.length || !ca.caKey) throw new OperationError('invalid', 'listen.clientAuth.ca and listen.clientAuth.caKey must be set to issue client certificates');
  findAccount(await store.read(), opts.account); // fail before minting anything
  const authority = await loadAuthority(await readFile(ca.ca[0]!, 'utf8'), await readFile(ca.caKey, 'utf8'));
  const now = opts.now ?? new Date();
  const issued = await issueClientCertificate(authority, { commonName: opts.account, organization: 'keygate service account', days: opts.days ?? 90, keyType: opts.keyType ?? 'ec', now });
  const binding = await store.update((data) =>
    bindCertificate(
      data,
      { account: opts.account, match: 'fingerprint', value: issued.fingerprint, nickname: opts.nickname ?? `issued ${now.toISOString().slice(0, 10)}`, endDate: issued.notAfter.toISOString(), serial: issued.serial, notAfter: issued.notAfter.toISOString() },
      { config, now },
    ),
  );
  await mkdir(opts.outDir, { recursive: true });
  const stem = fileStem(opts.account);
  const certFile = join(opts.outDir, `${stem}.crt`);
  const keyFile = join(opts.outDir, `${stem}.key`);
  await writeFile(certFile, issued.certPem);
  await writeKey(keyFile, issued.keyPem);
  return { issued, binding, certFile, keyFile };
}

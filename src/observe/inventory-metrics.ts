// Gauges that describe the inventory and the TLS material rather than traffic: when each
// credential (or account) stops working, when each certificate, CA and CRL runs out. Set
// after every change, read at scrape time.
import type { CredentialIndex } from '../vocabulary/principal.js';
import type { KeygateMetrics } from './metrics.js';

/**
 * keygate_credential_expiry_timestamp_seconds kept in step with the index: all series after a
 * snapshot or a new config, and after a change only those of what it touched — setting 100,000
 * series again for one revocation costs a replica a quarter of a second or more.
 */
export class CredentialExpiry {
  /** The account label of each credential's series, to remove it when the credential goes or moves. */
  private readonly accountOf = new Map<string, string>();

  constructor(private readonly metrics: KeygateMetrics) {}

  all(index: CredentialIndex): void {
    this.metrics.credentialExpiry.reset();
    this.accountOf.clear();
    for (const a of index.accounts.values()) this.account(index, a.name);
    for (const id of index.byId.keys()) this.credential(index, id);
    this.metrics.forgetAccounts(new Set(index.accounts.keys()));
  }

  /** The series of these accounts and credentials only (what one apply touched). */
  some(index: CredentialIndex, touched: { accounts: Iterable<string>; credentials: Iterable<string> }): void {
    let gone = false;
    for (const name of touched.accounts) {
      this.metrics.credentialExpiry.remove(name, 'account');
      gone = this.account(index, name) || gone;
    }
    for (const id of touched.credentials) {
      const was = this.accountOf.get(id);
      if (was !== undefined) this.metrics.credentialExpiry.remove(was, id);
      this.accountOf.delete(id);
      this.credential(index, id);
    }
    if (gone) this.metrics.forgetAccounts(new Set(index.accounts.keys()));
  }

  /** Sets the account's series; true when the account is gone. */
  private account(index: CredentialIndex, name: string): boolean {
    const a = index.accounts.get(name);
    if (a && a.endMs !== null) this.metrics.credentialExpiry.labels(a.name, 'account').set(a.endMs / 1000);
    return a === undefined;
  }

  private credential(index: CredentialIndex, id: string): void {
    const c = index.byId.get(id);
    if (!c || c.revoked) return;
    this.metrics.credentialExpiry.labels(c.account.name, c.id).set(c.endsMs === null ? Infinity : c.endsMs / 1000);
    this.accountOf.set(id, c.account.name);
  }
}

export function exportCertificateExpiry(metrics: KeygateMetrics, certificates: ReadonlyArray<{ kind: string; subject: string; notAfterMs: number }>): void {
  metrics.certificateExpiry.reset();
  for (const c of certificates) metrics.certificateExpiry.labels(c.kind, c.subject).set(c.notAfterMs / 1000);
}

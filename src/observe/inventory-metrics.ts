// Gauges that describe the inventory and the TLS material rather than traffic: when each
// credential (or account) stops working, when each certificate, CA and CRL runs out. Set
// after every change, read at scrape time.
import type { CredentialIndex } from '../vocabulary/principal.js';
import type { KeygateMetrics } from './metrics.js';

export function exportCredentialExpiry(metrics: KeygateMetrics, index: CredentialIndex): void {
  metrics.credentialExpiry.reset();
  for (const a of index.accounts.values()) if (a.endMs !== null) metrics.credentialExpiry.labels(a.name, 'account').set(a.endMs / 1000);
  for (const c of index.byId.values()) {
    if (c.revoked) continue;
    metrics.credentialExpiry.labels(c.account.name, c.id).set(c.endsMs === null ? Infinity : c.endsMs / 1000);
  }
  metrics.forgetAccounts(new Set(index.accounts.keys()));
}

export function exportCertificateExpiry(metrics: KeygateMetrics, certificates: ReadonlyArray<{ kind: string; subject: string; notAfterMs: number }>): void {
  metrics.certificateExpiry.reset();
  for (const c of certificates) metrics.certificateExpiry.labels(c.kind, c.subject).set(c.notAfterMs / 1000);
}

// Gauges that describe the inventory and the TLS material rather than traffic: when
// credentials and accounts stop working, when each certificate, CA and CRL runs out. Set
// after every change, read at scrape time.
import type { CredentialIndex, Principal } from '../vocabulary/principal.js';
import type { KeygateMetrics } from './metrics.js';

/**
 * keygate_credential_expiry_timestamp_seconds kept in step with the index, with a bounded set
 * of series at any inventory size: per credential only while it is within
 * credentials.warnBefore of its end (the window in which responses carry
 * keygate-credential-expires), and per account two at most — its end date
 * (credential="account") and the soonest end of the account or any active credential in it
 * (credential="soonest"). A series per credential made a scrape of 100,000 credentials 10 MB.
 *
 * All series after a snapshot or a new config; after a change only those of what it touched.
 * A credential enters and leaves its window as time passes, so the export also looks at the
 * clock when scraped: once the earliest such instant has passed it is redone (one pass over
 * the index, at most once per boundary crossed, never on the request path).
 */
export class CredentialExpiry {
  /** The account label of each credential shown, to remove its series when it goes or moves. */
  private readonly shown = new Map<string, string>();
  /** Each account's active credentials that have an end (what its soonest end is the minimum of). */
  private readonly ending = new Map<string, Set<string>>();
  /** And the reverse: the account each of them was filed under. */
  private readonly endingIn = new Map<string, string>();
  /** The earliest instant at which some series must change without any change to the index. */
  private next = Infinity;
  /** When the export was last brought up to date: a clock set back since then redoes it too. */
  private at = -Infinity;
  private index: CredentialIndex | undefined;

  constructor(
    private readonly metrics: KeygateMetrics,
    private readonly now: () => number = Date.now,
  ) {
    metrics.expirySource = () => this.refresh();
  }

  all(index: CredentialIndex): void {
    this.index = index;
    this.metrics.credentialExpiry.reset();
    this.shown.clear();
    this.ending.clear();
    this.endingIn.clear();
    this.next = Infinity;
    const t = (this.at = this.now());
    for (const c of index.byId.values()) {
      this.file(c);
      this.show(c, t);
    }
    for (const a of index.accounts.values()) this.account(index, a.name, t);
    this.metrics.forgetAccounts(new Set(index.accounts.keys()));
  }

  /** The series of these accounts and credentials only (what one apply touched). */
  some(index: CredentialIndex, touched: { accounts: Iterable<string>; credentials: Iterable<string> }): void {
    this.index = index;
    const t = this.now();
    if (t < this.at) return this.all(index);
    this.at = t;
    const accounts = new Set(touched.accounts);
    let gone = false;
    for (const id of touched.credentials) {
      const was = this.shown.get(id);
      if (was !== undefined) this.metrics.credentialExpiry.remove(was, id);
      this.shown.delete(id);
      const filed = this.endingIn.get(id);
      if (filed !== undefined) {
        this.ending.get(filed)?.delete(id);
        this.endingIn.delete(id);
        accounts.add(filed);
      }
      const c = index.byId.get(id);
      if (!c) continue;
      if (this.file(c)) accounts.add(c.account.name);
      this.show(c, t);
    }
    for (const name of accounts) gone = this.account(index, name, t) || gone;
    if (gone) this.metrics.forgetAccounts(new Set(index.accounts.keys()));
  }

  /** Before a scrape: redo the export once an instant it depends on has passed. */
  refresh(): void {
    if (!this.index) return;
    const t = this.now();
    if (t >= this.next || t < this.at) this.all(this.index);
  }

  /** Files an active credential with an end under its account; true when it was filed. */
  private file(c: Principal): boolean {
    if (c.revoked || c.endsMs === null) return false;
    const name = c.account.name;
    let set = this.ending.get(name);
    if (!set) this.ending.set(name, (set = new Set()));
    set.add(c.id);
    this.endingIn.set(c.id, name);
    return true;
  }

  /** The credential's own series while it is inside its warning window. */
  private show(c: Principal, t: number): void {
    if (c.revoked || c.endsMs === null || c.warnFromMs === null) return;
    if (t < c.warnFromMs) {
      this.next = Math.min(this.next, c.warnFromMs);
      return;
    }
    if (t >= c.endsMs) return;
    this.next = Math.min(this.next, c.endsMs);
    this.metrics.credentialExpiry.labels(c.account.name, c.id).set(c.endsMs / 1000);
    this.shown.set(c.id, c.account.name);
  }

  /** The account's two series; true when the account is gone. */
  private account(index: CredentialIndex, name: string, t: number): boolean {
    const gauge = this.metrics.credentialExpiry;
    gauge.remove(name, 'account');
    gauge.remove(name, 'soonest');
    const a = index.accounts.get(name);
    if (!a) {
      this.ending.delete(name);
      return true;
    }
    if (a.endMs !== null) gauge.labels(name, 'account').set(a.endMs / 1000);
    let soonest = a.endMs !== null && a.endMs > t ? a.endMs : Infinity;
    for (const id of this.ending.get(name) ?? []) {
      const ends = index.byId.get(id)?.endsMs;
      if (ends !== undefined && ends !== null && ends > t && ends < soonest) soonest = ends;
    }
    if (soonest === Infinity) return false;
    // Past it, the next soonest takes over.
    this.next = Math.min(this.next, soonest);
    gauge.labels(name, 'soonest').set(soonest / 1000);
    return false;
  }
}

export function exportCertificateExpiry(metrics: KeygateMetrics, certificates: ReadonlyArray<{ kind: string; subject: string; notAfterMs: number }>): void {
  metrics.certificateExpiry.reset();
  for (const c of certificates) metrics.certificateExpiry.labels(c.kind, c.subject).set(c.notAfterMs / 1000);
}

// Who a request is from, as the stages after identify see it: the credential entry (a token or
// a certificate binding) with its account, its compiled grant, its rate policy and its end,
// all resolved when the inventory was indexed, so that deciding costs lookups, not work.
import type { AccountRecord, CertBindingRecord, TokenRecord } from '../store/types.js';
import type { BucketPolicy } from './limits.js';

/** One scope rule as the decision reports it. */
export interface Rule {
  readonly scope: string;
  /** The rule as written, for audit, 403 details and `keygate explain`. */
  readonly text: string;
}

/** What one credential may do: the union of its effective scopes' rules. */
export interface Grant {
  /** Effective scopes, sorted. */
  readonly scopes: readonly string[];
  /** Value of the x-keygate-scopes header, built once. */
  readonly header: string;
  /** The built-in keygate:admin scope is among them. */
  readonly admin: boolean;
  /** The first rule that allows this request, or undefined. */
  allows(method: string, path: string): Rule | undefined;
}

export interface AccountEntry {
  readonly name: string;
  readonly disabled: boolean;
  /** End of the account's last day (23:59:59.999 UTC), epoch ms; null = no end. */
  readonly endMs: number | null;
  readonly record: AccountRecord;
}

export interface Principal {
  /** `account` only in a dry run without a token: the account's own scopes and policy. */
  readonly kind: 'token' | 'cert' | 'account';
  /** Token id, or binding id (`sha256:<fp>` for fingerprint bindings). Safe to log. */
  readonly id: string;
  readonly account: AccountEntry;
  readonly revoked: boolean;
  /** When the credential itself stops working, epoch ms; null = never. */
  readonly expiresMs: number | null;
  readonly grant: Grant;
  readonly policy: BucketPolicy | null;
  /** Rate-limit bucket: per credential or per account, as the policy says. */
  readonly bucketKey: string;
  /** The earlier of credential expiry and account end, or null. */
  readonly endsMs: number | null;
  /** From this instant on, responses carry keygate-credential-expires; null = never. */
  readonly warnFromMs: number | null;
  /** RFC 3339 form of endsMs, built once. */
  readonly endsHeader: string | null;
  readonly token?: TokenRecord;
  readonly binding?: CertBindingRecord;
}

/** What a verified client certificate says about its holder (parsed once per connection). */
export interface PeerIdentity {
  /** SHA-256 of the DER certificate, lowercase hex without colons. */
  readonly fingerprint: string;
  readonly subject: string;
  readonly cn: string | undefined;
  readonly dns: readonly string[];
  readonly uris: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** Value of x-forwarded-client-cert, in Envoy's format, built once. */
  readonly xfcc: string;
}

export interface UriPatternEntry {
  readonly matches: (uri: string) => boolean;
  readonly entry: Principal;
}

/** The inventory indexed for identify: every lookup is a map get. */
export interface CredentialIndex {
  readonly tokensByHash: ReadonlyMap<string, Principal>;
  readonly byId: ReadonlyMap<string, Principal>;
  readonly accounts: ReadonlyMap<string, AccountEntry>;
  readonly certByFingerprint: ReadonlyMap<string, Principal>;
  readonly certByCN: ReadonlyMap<string, Principal>;
  readonly certByDNS: ReadonlyMap<string, Principal>;
  readonly certByURI: ReadonlyMap<string, Principal>;
  /** URI bindings with `*` / `**`, most specific first, tried after exact ones. */
  readonly certURIPatterns: readonly UriPatternEntry[];
}

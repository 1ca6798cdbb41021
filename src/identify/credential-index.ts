// The credential index: built once per (config, store) version, so that identifying a caller
// is one hash-map lookup. Each entry already holds everything later stages need: the account,
// the compiled grant, the resolved rate policy and bucket key, expiry and warning times.
import type { Grant } from '../authorize/grants.js';
import type { BucketPolicy } from '../ratelimit/token-bucket.js';
import type { AccountRecord, CertBindingRecord, TokenRecord } from '../store/types.js';
import { compareUriPatterns, compileUriPattern } from '../store/uri-pattern.js';

export interface AccountEntry {
  readonly name: string;
  readonly disabled: boolean;
  /** End of the account's last day (23:59:59.999 UTC), epoch ms; null = no end. */
  readonly endMs: number | null;
  readonly record: AccountRecord;
}

export interface CredentialEntry {
  readonly kind: 'token' | 'cert';
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
  /** For tokens: the stored SHA-256 as bytes, for the constant-time comparison. */
  readonly digest?: Buffer;
  readonly binding?: CertBindingRecord;
}

export interface UriPattern {
  readonly regex: RegExp;
  readonly entry: CredentialEntry;
}

export interface CredentialIndex {
  readonly tokensByHash: ReadonlyMap<string, CredentialEntry>;
  readonly byId: ReadonlyMap<string, CredentialEntry>;
  readonly accounts: ReadonlyMap<string, AccountEntry>;
  readonly certByFingerprint: ReadonlyMap<string, CredentialEntry>;
  readonly certByCN: ReadonlyMap<string, CredentialEntry>;
  readonly certByDNS: ReadonlyMap<string, CredentialEntry>;
  readonly certByURI: ReadonlyMap<string, CredentialEntry>;
  /** URI bindings with `*` / `**`, most specific first, tried after exact ones. */
  readonly certURIPatterns: readonly UriPattern[];
}

/** End of a YYYY-MM-DD day in UTC, epoch ms. */
export function endOfDayMs(day: string): number {
  return Date.parse(`${day}T23:59:59.999Z`);
}

/** SPIFFE-style URI patterns: `*` one segment, `**` any number (see store/uri-pattern.ts). */
export { compileUriPattern };

/** Puts the most specific URI pattern first, so that the first match is the one that decides. */
export function sortUriPatterns(patterns: UriPattern[]): UriPattern[] {
  return patterns.sort((a, b) => compareUriPatterns(a.entry.binding!, b.entry.binding!));
}

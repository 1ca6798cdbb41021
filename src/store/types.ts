// The credential store's data model: plain records, as stored. Times are ISO-8601 strings in
// UTC; an account end date is a calendar day (YYYY-MM-DD) that ends at 23:59:59 UTC.

export interface AccountRecord {
  name: string;
  description: string;
  owner: string;
  endDate: string | null;
  roles: string[];
  scopes: string[];
  policy: string | null;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export type TokenStatus = 'active' | 'revoked';

export interface TokenRecord {
  id: string;
  account: string;
  label: string;
  /** SHA-256 of the secret, lowercase hex. */
  hash: string;
  /** Environment embedded in the token's prefix, or null. */
  environment: string | null;
  /** Own scopes (a subset of the account's), or null for all of the account's. */
  scopes: string[] | null;
  policy: string | null;
  status: TokenStatus;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokeReason: string | null;
  /** Rotation links: the token this one replaced, and the one that replaced it. */
  rotatedFrom: string | null;
  rotatedTo: string | null;
}

export type CertMatch = 'fingerprint' | 'cn' | 'dns' | 'uri';

export interface CertBindingRecord {
  /** `sha256:<fingerprint>` for fingerprint bindings, else crt_… */
  id: string;
  account: string;
  match: CertMatch;
  /** Fingerprint (lowercase hex, no colons), CN, DNS name, or URI pattern (`*`, `**`). */
  value: string;
  nickname: string;
  /** After this instant the binding no longer admits anyone; null = no end. */
  endDate: string | null;
  /** Own scopes, or null for the account's. */
  scopes: string[] | null;
  policy: string | null;
  createdAt: string;
  /** For certificates issued by `keygate cert issue`: their serial and notAfter. */
  serial: string | null;
  notAfter: string | null;
}

export interface StoreData {
  version: 1;
  accounts: AccountRecord[];
  tokens: TokenRecord[];
  certificates: CertBindingRecord[];
}

export function emptyStore(): StoreData {
  return { version: 1, accounts: [], tokens: [], certificates: [] };
}

/** Last-use times by credential id (epoch milliseconds). */
export type UsageMap = Record<string, number>;

export type StoreChangeListener = () => void;

/**
 * Where accounts and credentials live. The embedded default is the YAML file store; a Redis
 * store implements the same contract for several replicas. Reads return a validated copy;
 * `update` runs read-modify-write atomically (a lock, then an atomic replace).
 */
export interface CredentialStore {
  readonly description: string;
  read(): Promise<StoreData>;
  update<T>(mutate: (data: StoreData) => T): Promise<T>;
  /** Calls back (debounced) when another process changed the data. Returns an unsubscribe. */
  watch(onChange: StoreChangeListener): () => void;
  readUsage(): Promise<UsageMap>;
  /** Merges these last-use times into the persisted ones (keeps the later of each). */
  writeUsage(usage: UsageMap): Promise<void>;
  close(): Promise<void>;
}

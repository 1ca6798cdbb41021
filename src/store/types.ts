// The credential store's data model: plain records, as stored. Times are ISO-8601 strings in
// UTC; an account end date is a calendar day (YYYY-MM-DD) that ends at 23:59:59.999 UTC.

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

/** One record written or removed. Keys: the account name, the token id, the binding id. */
export type StoreChange =
  | { readonly op: 'put'; readonly kind: 'account'; readonly record: AccountRecord }
  | { readonly op: 'put'; readonly kind: 'token'; readonly record: TokenRecord }
  | { readonly op: 'put'; readonly kind: 'certificate'; readonly record: CertBindingRecord }
  | { readonly op: 'delete'; readonly kind: 'account' | 'token' | 'certificate'; readonly key: string };

/** A problem with the data itself, at a path inside it (`tokens[3].scopes[0]`); the backend positions it. */
export interface DataProblem {
  path: ReadonlyArray<string | number>;
  message: string;
}

/** A problem a backend found in data it read (a hand edit that does not validate), positioned in its own terms. */
export interface StoreProblem {
  file: string;
  line: number;
  col: number;
  message: string;
}

/**
 * What a running proxy is told by the store it follows. A backend first delivers a snapshot,
 * then changes in revision order, each relative to the previous one it delivered; after a gap
 * it cannot bridge (a reconnect that outlived the change log) it delivers a snapshot again.
 * Revisions only grow. Data that does not even validate (a hand edit) is reported with
 * onRejected and skipped. Whether the follower can use a version (cross-checks against its
 * config) is the follower's business (runtime/inventory.ts). What is delivered is read-only:
 * the Redis store hands every feed the same frozen records it holds itself, so that a large
 * inventory is in memory once.
 */
export interface StoreFeed {
  /** The whole inventory as of `revision`. */
  onSnapshot(data: StoreData, revision: number): void;
  /** The changes that took the inventory from the previous revision to `revision`. */
  onChanges(changes: readonly StoreChange[], revision: number): void;
  /** New data was read but refused; the previous state keeps serving. */
  onRejected?(problems: readonly StoreProblem[]): void;
  /** The store became reachable (true) or unreachable (false); shared stores only. */
  onStatus?(up: boolean, detail?: string): void;
}

export interface StoreFollower {
  /** Looks for changes now and resolves once they were delivered (read-your-writes after an update). */
  sync(): Promise<void>;
  stop(): void;
}

/**
 * Where accounts and credentials live: the YAML file store (the embedded default) or Redis
 * (several replicas). Reads return a validated copy; `update` runs read-modify-write
 * atomically, also against writers in other processes and on other hosts. Only
 * store/factory.ts constructs one; everything else takes this interface.
 */
export interface CredentialStore {
  readonly kind: 'file' | 'redis';
  /** For logs and error messages: "file /etc/keygate/credentials.yaml", "redis 10.0.0.5:6379/0". */
  readonly description: string;
  read(): Promise<StoreData>;
  /**
   * Reads and validates, then runs `check` (cross-checks against keygate.yaml) and returns its
   * problems positioned where an operator can find them (file:line:col for the file store).
   */
  load(check?: (data: StoreData) => readonly DataProblem[]): Promise<{ data?: StoreData; problems: StoreProblem[] }>;
  /**
   * Data problems of `data` (the version a follower delivered, or built from what it delivered)
   * positioned in the store's terms: file:line:col of the version last read, for the file store,
   * whose reader may run in another thread (hence a promise).
   */
  locate(problems: readonly DataProblem[], data?: StoreData): StoreProblem[] | Promise<StoreProblem[]>;
  /** Applies `mutate` to the current data and persists the result, atomically; returns what it returned. */
  update<T>(mutate: (data: StoreData) => T, meta?: { actor?: string }): Promise<T>;
  /** Follows changes made by anyone (snapshot first). */
  follow(feed: StoreFeed): StoreFollower;
  readUsage(): Promise<UsageMap>;
  /** Merges these last-use times into the persisted ones (keeps the later of each). */
  writeUsage(usage: UsageMap): Promise<void>;
  close(): Promise<void>;
}

// What the admin API needs of the running keygate: the inventory it serves now (reads), the
// store (writes), and the pieces that log, audit and count. Given by instance.ts; the admin API
// never reaches into the instance itself.
import type { KeygateConfig } from '../config/schema.js';
import type { AuditSink } from '../observe/audit.js';
import type { Logger } from '../observe/logger.js';
import type { KeygateMetrics } from '../observe/metrics.js';
import type { CredentialStore, StoreData, UsageMap } from '../store/types.js';
import type { BucketPolicy } from '../vocabulary/limits.js';
import type { CredentialIndex } from '../vocabulary/principal.js';
import type { ExplainRuntime } from '../runtime/explain-runtime.js';

export interface AdminApiContext {
  config(): KeygateConfig;
  /** The inventory exactly as the proxy serves it right now (no file or Redis read per GET). */
  snapshot(): StoreData;
  /** Last-use times as this process knows them (persisted ones and those still to be written). */
  usage(): UsageMap;
  index(): CredentialIndex;
  /** The budget of failed authentications per client IP. */
  authFailurePolicy(): BucketPolicy;
  explain(): ExplainRuntime;
  /** Where changes go. */
  store: CredentialStore;
  /** This process, as management audit lines and the shared store's change log name it (host:pid). */
  replica: string;
  /** Resolves once every change written so far is part of snapshot() (read-your-writes). */
  sync(): Promise<void>;
  audit: AuditSink;
  logger: Logger;
  metrics: KeygateMetrics;
  now: () => number;
}

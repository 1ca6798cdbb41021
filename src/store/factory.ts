// The one place that knows which backend a config selects. Everything else — the proxy, the
// admin API, the CLI, `keygate check` — takes the CredentialStore interface.
import type { KeygateConfig } from '../config/schema.js';
import { FileStore } from './file/file-store.js';
import type { CredentialStore } from './types.js';

export function createStore(config: Pick<KeygateConfig, 'store'>): CredentialStore {
  return new FileStore(config.store.file);
}

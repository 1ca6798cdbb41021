// The store contract against the file backend (a temp folder per test).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../src/store/file/file-store.js';
import { describeCredentialStore } from './conformance.js';

describeCredentialStore('file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-store-'));
  const file = join(dir, 'credentials.yaml');
  return { open: () => new FileStore(file), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

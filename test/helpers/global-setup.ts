// Integration tests run the built CLI (dist/), as users do. `npm test` builds first.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const bin = fileURLToPath(new URL('../../dist/cli/keygate.js', import.meta.url));
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" (npm test does it for you)`);
}

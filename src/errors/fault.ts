// Errors keygate raises internally carry a stable code from the catalog, like the answers it
// gives: the admin API turns one into a problem+json answer, the CLI into an exit code and one
// line on stderr, both through errors/mapping.ts. Subclasses say where they come from
// (SourceError, OperationError, LockTimeoutError, …); the code says what it means.
import type { ErrorCode } from './catalog.js';

export class KeygateFault extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Headers an HTTP answer to this fault carries (Retry-After, Allow, …). */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

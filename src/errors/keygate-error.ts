import { ERRORS, type ErrorCode } from './catalog.js';

/**
 * A decision to answer the request with an error. Stages return (never throw) these; only
 * the problem writer turns one into a response. `detail` overrides the catalog's default and
 * must never contain a secret.
 */
export class KeygateError {
  readonly status: number;
  /** The problem body up to its requestId, built on first use (errors/problem.ts): refusing again costs a concatenation. */
  bodyHead: string | undefined;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string = ERRORS[code].detail,
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    this.status = ERRORS[code].status;
  }
  get reason(): string {
    return ERRORS[this.code].reason;
  }
}

/** Errors that carry nothing request-specific are built once and shared. */
const shared = new Map<ErrorCode, KeygateError>();
export function kgError(code: ErrorCode): KeygateError {
  let e = shared.get(code);
  if (!e) shared.set(code, (e = new KeygateError(code)));
  return e;
}

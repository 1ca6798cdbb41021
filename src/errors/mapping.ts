// The one mapping from anything thrown to an HTTP answer, and the one mapping to a CLI exit
// code. Both read the catalog: a KeygateFault (or a KeygateError) carries its code; anything
// else is unexpected — answered as KG_ERR_INTERNAL and flagged so the caller logs it.
import { ERRORS } from './catalog.js';
import { KeygateFault } from './fault.js';
import { KeygateError, kgError } from './keygate-error.js';

export interface Mapped {
  error: KeygateError;
  /** Not a fault keygate foresaw: log it with its stack and count it. */
  unexpected: boolean;
}

export function answerFor(err: unknown): Mapped {
  if (err instanceof KeygateError) return { error: err, unexpected: false };
  if (err instanceof KeygateFault) return { error: new KeygateError(err.code, err.message || undefined, err.headers), unexpected: false };
  return { error: kgError('KG_ERR_INTERNAL'), unexpected: true };
}

/** Exit code of a command that ended with `err` (docs/cli.md). */
export function exitCodeFor(err: unknown): number {
  if (err instanceof KeygateFault || err instanceof KeygateError) return ERRORS[err.code].exit;
  return ERRORS.KG_ERR_INTERNAL.exit;
}

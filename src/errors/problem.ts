// The body of keygate's own refusals: application/problem+json (RFC 9457). Put on the wire by
// transport/problem.ts.
import { ERRORS } from './catalog.js';
import type { KeygateError } from './keygate-error.js';

export const PROBLEM_TYPE_BASE = 'urn:keygate:error:';

export function problemBody(err: KeygateError, requestId: string): string {
  const spec = ERRORS[err.code];
  return JSON.stringify({
    type: PROBLEM_TYPE_BASE + err.code,
    title: spec.title,
    status: err.status,
    detail: err.detail,
    hint: spec.hint,
    code: err.code,
    requestId,
  });
}

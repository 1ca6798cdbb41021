// The body of keygate's own refusals: application/problem+json (RFC 9457). Put on the wire by
// transport/problem.ts.
import { ERRORS } from './catalog.js';
import type { KeygateError } from './keygate-error.js';

export const PROBLEM_TYPE_BASE = 'urn:keygate:error:';

/**
 * Everything but the request id depends on the error alone, and most errors are shared
 * (kgError, the front stages' refusals): the head of the body is built once per error, so a
 * refusal under a flood of bad requests costs one concatenation, not a serialization.
 */
export function problemBody(err: KeygateError, requestId: string): string {
  let head = err.bodyHead;
  if (head === undefined) {
    const spec = ERRORS[err.code];
    const whole = JSON.stringify({ type: PROBLEM_TYPE_BASE + err.code, title: spec.title, status: err.status, detail: err.detail, hint: spec.hint, code: err.code, requestId: '' });
    err.bodyHead = head = whole.slice(0, -3); // without `""}`
  }
  return `${head}${JSON.stringify(requestId)}}`;
}

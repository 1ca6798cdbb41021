// The one writer of application/problem+json (RFC 9457) answers.
import type { ServerResponse } from 'node:http';
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

export function writeProblem(res: ServerResponse, err: KeygateError, requestId: string, extraHeaders?: Readonly<Record<string, string | number>>): void {
  if (res.headersSent) {
    // Too late for an answer of our own: cut the response so the client cannot take a
    // truncated body for a complete one.
    res.destroy();
    return;
  }
  const body = problemBody(err, requestId);
  res.statusCode = err.status;
  res.setHeader('content-type', 'application/problem+json');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  res.setHeader('x-request-id', requestId);
  if (extraHeaders) for (const k in extraHeaders) res.setHeader(k, extraHeaders[k]!);
  if (err.headers) for (const k in err.headers) res.setHeader(k, err.headers[k]!);
  res.end(body);
}

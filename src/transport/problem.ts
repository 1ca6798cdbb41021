// The one writer of keygate's own refusals: application/problem+json (RFC 9457) with the
// headers every such answer carries — never cached, never sniffed as something else. The body
// comes from errors/problem.ts; this file only puts it on an exchange.
import type { ServerResponse } from 'node:http';
import type { KeygateError } from '../errors/keygate-error.js';
import { problemBody } from '../errors/problem.js';
import type { Exchange } from '../vocabulary/exchange.js';

type Answerable = Pick<Exchange, 'headersSent' | 'respond' | 'destroy'>;

/** `headers`: keygate's own headers for this request (x-request-id first, see own-headers.ts). */
export function sendProblem(x: Answerable, err: KeygateError, requestId: string, headers: readonly string[] = ['x-request-id', requestId]): void {
  if (x.headersSent) {
    // Too late for an answer of our own: cut the response so the client cannot take a
    // truncated body for a complete one.
    x.destroy();
    return;
  }
  const body = problemBody(err, requestId);
  const out = ['content-type', 'application/problem+json', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store', 'x-content-type-options', 'nosniff', ...headers];
  if (err.headers) for (const k in err.headers) out.push(k, err.headers[k]!);
  x.respond(err.status, out, body);
}

/** sendProblem for a bare ServerResponse (the admin listener's own endpoints). */
export function writeProblem(res: ServerResponse, err: KeygateError, requestId: string, extra?: Readonly<Record<string, string | number>>): void {
  const headers = ['x-request-id', requestId];
  if (extra) for (const k in extra) headers.push(k, String(extra[k]));
  sendProblem(
    {
      get headersSent() {
        return res.headersSent;
      },
      respond: (status, h, body) => {
        res.writeHead(status, h as string[]);
        res.end(body);
      },
      destroy: () => res.destroy(),
    },
    err,
    requestId,
    headers,
  );
}

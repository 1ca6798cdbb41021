// The one writer of keygate's own refusals: application/problem+json (RFC 9457) with the
// headers every such answer carries — never cached, never sniffed as something else. The body
// comes from errors/problem.ts; this file only puts it on an exchange. A gRPC call gets the
// same refusal in gRPC's terms instead: a client library reads grpc-status, never a body.
import type { ServerResponse } from 'node:http';
import type { KeygateError } from '../errors/keygate-error.js';
import { problemBody } from '../errors/problem.js';
import type { Exchange } from '../vocabulary/exchange.js';
import { encodeGrpcMessage, grpcStatusFor } from './grpc.js';

type Answerable = Pick<Exchange, 'headersSent' | 'respond' | 'destroy'> & { readonly protocol?: Exchange['protocol'] };

/** `headers`: keygate's own headers for this request (x-request-id first, see own-headers.ts). */
export function sendProblem(x: Answerable, err: KeygateError, requestId: string, headers: readonly string[] = ['x-request-id', requestId]): void {
  if (x.headersSent) {
    // Too late for an answer of our own: cut the response so the client cannot take a
    // truncated body for a complete one.
    x.destroy();
    return;
  }
  if (x.protocol === 'grpc') {
    sendGrpcRefusal(x, err, headers);
    return;
  }
  const body = problemBody(err, requestId);
  const out = ['content-type', 'application/problem+json', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store', 'x-content-type-options', 'nosniff', ...headers];
  if (err.headers) for (const k in err.headers) out.push(k, err.headers[k]!);
  x.respond(err.status, out, body);
}

/**
 * A trailers-only gRPC answer (one HEADERS frame with END_STREAM): HTTP status 200 as gRPC
 * requires, grpc-status from the refusal's HTTP status, the problem's detail as grpc-message,
 * and the stable KG_ERR_* code as the `x-keygate-error` metadata entry, which clients read
 * like any other metadata (grpc-js: `err.metadata.get('x-keygate-error')`).
 */
function sendGrpcRefusal(x: Answerable, err: KeygateError, headers: readonly string[]): void {
  const out = ['content-type', 'application/grpc', 'grpc-status', String(grpcStatusFor(err.status)), 'grpc-message', encodeGrpcMessage(err.detail), 'x-keygate-error', err.code, 'cache-control', 'no-store', ...headers];
  if (err.headers) for (const k in err.headers) out.push(k, err.headers[k]!);
  x.respond(200, out, '');
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

// Requests Node's HTTP parser refuses before keygate sees them — not HTTP/1.1, a head over
// listen.limits.maxHeaderSize, a head or body that stalls past its timeout — get the same
// treatment as any other refusal: a problem+json answer with a stable code and a request id,
// one audit line, one metric. Without this listener Node would answer in plain text and
// nothing would be recorded.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorCode } from '../errors/catalog.js';
import { kgError } from '../errors/keygate-error.js';
import { problemBody } from '../errors/problem.js';
import { clientAddress } from '../transport/client-address.js';
import type { AuditSink } from '../observe/audit.js';
import type { KeygateMetrics } from '../observe/metrics.js';

export type ParserRefusalHandler = (err: Error & { code?: string }, socket: Duplex) => void;

function codeFor(err: { code?: string }): ErrorCode {
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'KG_ERR_HEADERS_TOO_LARGE';
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'KG_ERR_REQUEST_TIMEOUT';
  return 'KG_ERR_MALFORMED_REQUEST';
}

export function createParserRefusalHandler(deps: { metrics: KeygateMetrics; audit: AuditSink }): ParserRefusalHandler {
  return (err, socket) => {
    // A response already on its way cannot be followed by another one without corrupting the
    // stream for the client; the same rule as Node's own handler.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || (inFlight && inFlight.headersSent)) {
      socket.destroy();
      return;
    }
    const e = kgError(codeFor(err));
    const requestId = randomUUID();
    const body = problemBody(e, requestId);
    // An answer to HEAD has no body (RFC 9110 §9.3.2): a client that sent HEAD would read the
    // body as the start of another answer. The method is the one the parser got far enough to
    // read, if any.
    const head = (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
    socket.end(
      `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `cache-control: no-store\r\nx-content-type-options: nosniff\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${head ? '' : body}`,
    );
    deps.metrics.observeRequest('', '', 'bad_request', 0);
    deps.audit.request({
      requestId,
      account: null,
      credential: null,
      auth: null,
      method: '',
      host: '',
      path: '',
      status: e.status,
      decision: 'deny',
      reason: e.code,
      durationMs: 0,
      clientIp: clientAddress((socket as Duplex & { remoteAddress?: string }).remoteAddress),
    });
  };
}

// Requests Node's HTTP server refuses before keygate's pipeline sees them — not HTTP/1.1, a
// head over listen.limits.maxHeaderSize, a broken chunk, a head or body that stalls past its
// timeout — and CONNECT, which Node hands to no request handler, get the same treatment as any
// other refusal: a problem+json answer with its own code and a request id, one audit line, one
// count. Without this module Node would answer in plain text (or close) and nothing would be
// recorded. Three rules keep it honest:
//   - only HTTP gets an HTTP answer. Node reports TLS failures here too (a handshake that timed
//     out, plaintext on the TLS port): there is no HTTP on such a socket, an answer written to
//     it never flushes (the socket then stays open for ever, defeating handshakeTimeout), so it
//     is destroyed, unanswered and unaudited (the TLS error is logged at debug);
//   - a request that is already in the pipeline (its body broke, or it timed out) is answered
//     by the pipeline, so that it is counted and audited once, as that refusal;
//   - the parser has lost track of where the next request starts: the connection is closed
//     after the answer, and nothing written behind the refused request is read.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorCode } from '../errors/catalog.js';
import { KeygateError } from '../errors/keygate-error.js';
import { problemBody } from '../errors/problem.js';
import { clientAddress } from '../transport/client-address.js';
import { exchangeOf } from '../transport/http1.js';
import type { AuditSink } from '../observe/audit.js';
import type { KeygateMetrics } from '../observe/metrics.js';

export type ParserRefusalHandler = (err: Error & { code?: string }, socket: Duplex) => void;
export type ConnectHandler = (req: IncomingMessage, socket: Duplex) => void;

type Socket = Duplex & { remoteAddress?: string; _httpMessage?: ServerResponse | null };

/** Refusals carry `connection: close`: after a parser error the stream cannot be read on. */
const refusal = (code: ErrorCode, detail?: string) => new KeygateError(code, detail, { connection: 'close' });
const MALFORMED = refusal('KG_ERR_MALFORMED_REQUEST');
const TOO_LARGE = refusal('KG_ERR_HEADERS_TOO_LARGE');
const TIMEOUT = refusal('KG_ERR_REQUEST_TIMEOUT');
const CONNECT = new KeygateError('KG_ERR_METHOD_NOT_ALLOWED', 'keygate is not a forward proxy: CONNECT is not allowed.', { connection: 'close', allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });

/** The HTTP refusal for a parser error; undefined: not an HTTP error, nothing to answer. */
export function refusalFor(err: { code?: string }): KeygateError | undefined {
  const code = err.code ?? '';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return TIMEOUT;
  // The client closed its side in the middle of a request: it is gone, nobody reads an answer
  // (the pipeline records the request as cut short, 499).
  if (!code.startsWith('HPE_') || code === 'HPE_INVALID_EOF_STATE') return undefined;
  return code === 'HPE_HEADER_OVERFLOW' ? TOO_LARGE : MALFORMED;
}

/** The method of the head the parser refused, as far as it got (HEAD needs an answer without a body). */
function methodOf(err: Error & { rawPacket?: Buffer }): string {
  const m = /^([A-Z]{1,16}) /.exec(err.rawPacket?.subarray(0, 17).toString('latin1') ?? '');
  return m ? m[1]! : '';
}

/** Longest host kept from a head that never became a request (audit lines are bounded anyway). */
const MAX_HOST = 255;

export function createParserRefusalHandler(deps: { metrics: KeygateMetrics; audit: AuditSink }): { onClientError: ParserRefusalHandler; onConnect: ConnectHandler } {
  /** keygate's own answer on a socket no request object owns, recorded like any request. */
  function answerRaw(socket: Socket, e: KeygateError, method: string, host: string): void {
    const requestId = randomUUID();
    const body = problemBody(e, requestId);
    // An answer to HEAD has no body (RFC 9110 §9.3.2): a client that sent HEAD would read the
    // body as the start of another answer. The method is the one the parser got far enough to
    // read, if any.
    const isHead = method === 'HEAD';
    let head = `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nx-request-id: ${requestId}\r\n`;
    for (const k in e.headers) head += `${k}: ${e.headers[k]}\r\n`;
    socket.end(`${head}\r\n${isHead ? '' : body}`);
    // A client that does not read its answer must not keep the socket: bounded like a request.
    setTimeout(() => socket.destroy(), 5_000).unref();
    deps.metrics.observeRequest('', '', 'bad_request', 0);
    deps.audit.request({
      requestId,
      account: null,
      credential: null,
      auth: null,
      method,
      host: host.length > MAX_HOST ? host.slice(0, MAX_HOST) : host,
      path: '',
      status: e.status,
      decision: 'deny',
      reason: e.code,
      durationMs: 0,
      clientIp: clientAddress(socket.remoteAddress),
    });
  }

  const onClientError: ParserRefusalHandler = (err, duplex) => {
    const socket = duplex as Socket;
    const e = refusalFor(err);
    if (!e || !socket.writable) {
      socket.destroy();
      return;
    }
    const inFlight = socket._httpMessage;
    if (inFlight) {
      // An answer already on its way cannot be followed by another one without corrupting the
      // stream for the client: cut it (the pipeline records the request as cut short).
      if (inFlight.headersSent) {
        socket.destroy();
        return;
      }
      const x = exchangeOf(inFlight);
      if (x && !x.req.complete) {
        // The request in the pipeline broke (its body) or ran out of time: it is the one refused.
        if (!x.refuse(e)) socket.destroy();
        else inFlight.once('finish', () => socket.destroy()).once('close', () => socket.destroy());
        return;
      }
      // The bytes after a complete request are what broke: answer them after that request's
      // own answer, never in the middle of it.
      inFlight.once('finish', () => (socket.writable ? answerRaw(socket, e, methodOf(err), '') : socket.destroy()));
      inFlight.once('close', () => {
        if (!inFlight.writableFinished) socket.destroy();
      });
      return;
    }
    answerRaw(socket, e, methodOf(err), '');
  };

  // keygate forwards requests; it does not open tunnels. Node hands CONNECT to no request
  // handler, so it is answered here: 405, recorded, closed.
  const onConnect: ConnectHandler = (req, duplex) => {
    const socket = duplex as Socket;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    answerRaw(socket, CONNECT, 'CONNECT', typeof req.headers.host === 'string' ? req.headers.host : '');
  };

  return { onClientError, onConnect };
}

// The Exchange over one HTTP/2 stream (Node's core 'stream' API, not the compat
// request/response pair, which costs ~50 % more CPU per request). A gRPC call is an HTTP/2
// stream whose content-type is application/grpc*: same exchange, protocol 'grpc', so the
// problem writer answers it in gRPC's terms.
//
// Things HTTP/2 does differently, handled here so nothing above has to know:
//  - headers go out as one object; connection-specific fields (RFC 9113 §8.2.2) must not be in
//    it (Node throws on them), so they are dropped, whoever put them in the list;
//  - trailers must be announced when the head is sent (waitForTrailers);
//  - a cut must be RST_STREAM: `close(code)` and `destroy()` without an error first send
//    END_STREAM when the writable side is open, and the client would take a truncated answer
//    for a complete one. Only `destroy(err)` resets (INTERNAL_ERROR);
//  - a stream the client already reset may still be handed to us, and any call on it throws:
//    every writer checks first.
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Exchange, Protocol } from '../vocabulary/exchange.js';
import { isGrpcContentType } from './grpc.js';

const { NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR } = constants;

/** Connection-specific header fields: never on an HTTP/2 message, in either direction. */
export const H2_CONNECTION_HEADERS: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

/** A flat [name, value, …] list as the object Node's HTTP/2 API takes; repeated names become arrays. */
export function h2Headers(flat: readonly string[], out: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    if (H2_CONNECTION_HEADERS.has(name)) continue;
    const value = flat[i + 1]!;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [String(prev), value];
  }
  return out;
}

/** Limits that belong to one stream (listen.http2.streamIdleTimeout, listen.limits.requestTimeout). */
export interface StreamLimits {
  readonly streamIdleMs: number;
  readonly requestBodyMs: number;
}

const ignore = (): void => undefined;

export class Http2Exchange implements Exchange {
  readonly protocol: Protocol;
  readonly method: string;
  readonly target: string;
  readonly expectsContinue: boolean;
  readonly hasBody: boolean;
  /** performance.now() when the stream arrived (the premature-reset rule reads it). */
  readonly openedAt = performance.now();
  /** keygate reset the stream itself (not the client): not a premature reset. */
  cut = false;
  private status = 0;
  private trailers: OutgoingHttpHeaders | undefined;
  private expire: ((detail: string) => void) | undefined;
  private bodyTimer: NodeJS.Timeout | undefined;
  /**
   * The session's view of the TLS socket (servername, peer certificate, remoteAddress), kept
   * now: a closed stream no longer knows its session, and audit reads it after the close.
   */
  readonly tls: TLSSocket;

  constructor(
    readonly stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    readonly rawHeaders: readonly string[],
    limits: StreamLimits,
  ) {
    this.tls = stream.session!.socket as TLSSocket;
    const ct = headers['content-type'];
    this.protocol = isGrpcContentType(ct) ? 'grpc' : 'h2';
    this.method = headers[':method'] ?? 'GET';
    this.target = headers[':path'] ?? '';
    this.hasBody = (flags & NGHTTP2_FLAG_END_STREAM) === 0;
    const expect = headers['expect'];
    this.expectsContinue = this.hasBody && typeof expect === 'string' && expect.toLowerCase() === '100-continue';
    // A reset by either side emits 'error' on the stream; unhandled, it would end the process.
    stream.on('error', ignore);
    stream.setTimeout(limits.streamIdleMs, () => this.expired(`The HTTP/2 stream was idle longer than listen.http2.streamIdleTimeout.`));
    // The whole body within requestTimeout, as on HTTP/1.1 — except for gRPC, whose client and
    // bidi streams legitimately last as long as the call's deadline.
    if (this.hasBody && this.protocol !== 'grpc') {
      this.bodyTimer = setTimeout(() => this.expired('The request body did not arrive within listen.limits.requestTimeout.'), limits.requestBodyMs);
      const clear = () => clearTimeout(this.bodyTimer);
      stream.once('end', clear);
      stream.once('close', clear);
    }
  }

  /** The stream's readable side. Its writable side is the answer: see forward-terminal.ts. */
  get body(): ServerHttp2Stream {
    return this.stream;
  }
  get statusCode(): number {
    return this.status;
  }
  get headersSent(): boolean {
    return this.stream.headersSent;
  }
  get completed(): boolean {
    const rst = this.stream.rstCode;
    return this.stream.writableFinished && !this.cut && (rst === undefined || rst === NGHTTP2_NO_ERROR);
  }
  get aborted(): boolean {
    return this.stream.destroyed || this.stream.aborted;
  }

  /** A complete answer; an empty body is sent as one HEADERS frame with END_STREAM (gRPC's trailers-only form). */
  respond(status: number, headers: readonly string[], body: string): void {
    if (this.stream.destroyed || this.stream.headersSent) return;
    this.status = status;
    const h = h2Headers(headers, { ':status': status });
    this.stopBodyAfterAnswer();
    if (body === '') {
      this.stream.respond(h, { endStream: true });
      return;
    }
    this.stream.respond(h);
    this.stream.end(body);
  }
  sendContinue(): void {
    if (this.expectsContinue && !this.stream.destroyed && !this.stream.headersSent) this.stream.additionalHeaders({ ':status': 100 });
  }
  writeHead(status: number, headers: readonly string[], trailers = false): void {
    if (this.stream.destroyed || this.stream.headersSent) return;
    this.status = status;
    const h = h2Headers(headers, { ':status': status });
    if (!trailers) {
      this.stopBodyAfterAnswer();
      this.stream.respond(h);
      return;
    }
    this.stream.respond(h, { waitForTrailers: true });
    // Sent after the last DATA frame; none given (the upstream sent none) ends the stream
    // with an empty DATA frame instead.
    this.stream.once('wantTrailers', () => {
      if (!this.stream.destroyed) this.stream.sendTrailers(this.trailers ?? {});
    });
  }
  write(chunk: Uint8Array): boolean {
    if (this.stream.destroyed) return true;
    return this.stream.write(chunk);
  }
  onDrain(fn: () => void): void {
    this.stream.once('drain', fn);
  }
  end(trailers?: readonly string[]): void {
    if (this.stream.destroyed || this.stream.writableEnded) return;
    if (trailers?.length) this.trailers = h2Headers(trailers);
    this.stream.end();
  }
  destroy(): void {
    // A stream the client already reset is not keygate's cut: it must still count as a
    // premature reset (http2-front.ts), whichever side of an await the RST_STREAM arrived on.
    if (this.stream.destroyed || this.stream.closed) return;
    this.cut = true;
    this.stream.destroy(new Error('cut by keygate'));
  }
  onClose(fn: () => void): void {
    this.stream.once('close', fn);
  }
  onExpire(fn: (detail: string) => void): void {
    this.expire = fn;
  }

  /**
   * An answer complete before the request body (a refusal, an upstream that answered early):
   * RST_STREAM(NO_ERROR) once the answer is out asks the client to stop sending (RFC 9113
   * §8.1) and ends the stream, instead of leaving it half open for as long as the client likes.
   */
  private stopBodyAfterAnswer(): void {
    if (!this.hasBody) return;
    this.stream.once('finish', () => {
      if (!this.stream.readableEnded && !this.stream.destroyed) this.stream.close(NGHTTP2_NO_ERROR);
    });
  }

  private expired(detail: string): void {
    if (this.stream.destroyed) return;
    if (this.expire) this.expire(detail);
    else this.destroy();
  }
}

// One request and its answer, whatever carries them: an HTTP/1.1 request on a TLS socket, an
// HTTP/2 stream, an upgraded connection. The pipeline, the problem writer, the forwarder and
// audit speak only to this face; transport/ adapts each protocol to it. Header lists are flat
// [name, value, name, value, …] arrays: what Node's fast paths take and give.
import type { Duplex, Readable } from 'node:stream';
import type { KeygateError } from '../errors/keygate-error.js';
import type { TLSSocket } from 'node:tls';

/** A bounded label: what the request speaks. */
export type Protocol = 'http/1.1' | 'h2' | 'grpc' | 'websocket';
export const PROTOCOLS: readonly Protocol[] = ['http/1.1', 'h2', 'grpc', 'websocket'];

export interface Exchange {
  readonly protocol: Protocol;
  readonly method: string;
  /** The request target as received: origin-form path and query (`/a/b?x=1`). */
  readonly target: string;
  /**
   * Request headers as received, flat. Names are as sent on HTTP/1.1 (any case) and lower
   * case on HTTP/2, where pseudo-headers (`:authority`, `:path`, …) come first.
   */
  readonly rawHeaders: readonly string[];
  /** The TLS connection the request arrived on: SNI, peer certificate, client address. None in a dry run. */
  readonly tls: TLSSocket | undefined;
  /** The request body as a stream; read by the forwarder only. */
  readonly body: Readable;
  /** The client asked for `100 Continue` before it sends the body. */
  readonly expectsContinue: boolean;
  /**
   * Whether a body follows, when the transport knows it: HTTP/2 says so with END_STREAM on the
   * request's HEADERS (a gRPC call has no content-length). Undefined on HTTP/1.1, where the
   * headers say (content-length, transfer-encoding).
   */
  readonly hasBody?: boolean;
  /** An HTTP/1.1 Upgrade (protocol `websocket`): the connection the tunnel terminal takes over. */
  readonly upgrade?: UpgradeIo;
  /**
   * The request may come without Host: HTTP/1.0 (RFC 9112 §3.2 requires it from 1.1 on) and
   * the dry run. Absent means required (HTTP/1.1, and HTTP/2's :authority).
   */
  readonly hostOptional?: boolean;

  /** Status already sent (0 before the head). */
  readonly statusCode: number;
  readonly headersSent: boolean;
  /** The answer went out complete (as opposed to cut, or not yet finished). */
  readonly completed: boolean;
  /** The client is gone or the exchange was cut. */
  readonly aborted: boolean;

  /** keygate's own complete answer. */
  respond(status: number, headers: readonly string[], body: string): void;
  /** Tells a client waiting on `Expect: 100-continue` to send its body. */
  sendContinue(): void;
  /**
   * The head of a streamed answer (the upstream's). `trailers`: the answer will end with
   * trailers (gRPC), which HTTP/2 must know before the head goes out; HTTP/1.1 ignores it.
   */
  writeHead(status: number, headers: readonly string[], trailers?: boolean): void;
  /** Returns false when the client's buffer is full: wait for onDrain. */
  write(chunk: Uint8Array): boolean;
  onDrain(fn: () => void): void;
  /** Ends the answer; trailers where the protocol carries them (HTTP/2, gRPC). */
  end(trailers?: readonly string[]): void;
  /** Cuts the exchange: a half-sent answer must not look whole to the client. */
  destroy(): void;
  /** Called once, when the exchange is over, complete or not. */
  onClose(fn: () => void): void;
  /**
   * A timer of the transport's own ran out (HTTP/2: the stream was idle too long, or the body
   * did not arrive within the request timeout). The request path answers or cuts the exchange;
   * `detail` says which limit it was. HTTP/1.1 has none: Node's parser enforces those there.
   */
  onExpire?(fn: (detail: string) => void): void;
  /**
   * Called when the transport refuses the request after its head reached the pipeline (an
   * HTTP/1.1 body the parser cannot read, a request timeout): the pipeline answers with `err`,
   * so that the request is counted and audited once, as that refusal. Optional.
   */
  onRefused?(fn: (err: KeygateError) => void): void;
  /**
   * Holds the next keygate answer for `ms` (a client over its failure budget pays in time).
   * False when the transport holds too many already: the caller cuts the exchange instead.
   * Optional: without it the answer goes at once.
   */
  holdAnswer?(ms: number): boolean;
}

/** The raw connection of an HTTP/1.1 Upgrade, for the tunnel once the upstream said 101. */
export interface UpgradeIo {
  readonly socket: Duplex;
  /** Bytes the client sent after the request head, already read off the socket by the parser. */
  readonly head: Buffer;
}

/** What a listener hands to the request path: one exchange, and the mode a dedicated port forces. */
export type ExchangeHandler = (x: Exchange, forcedMode?: 'clientauth') => void;

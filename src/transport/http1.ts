// The Exchange over Node's HTTP/1.1 server objects. One small object per request; everything
// else is a pass-through to IncomingMessage / ServerResponse, whose fast paths (a flat header
// list in one writeHead) it keeps.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { KeygateError } from '../errors/keygate-error.js';
import type { Exchange } from '../vocabulary/exchange.js';

/** Where a response finds its exchange (listener/parser-refusals.ts): a property, not a map lookup. */
const EXCHANGE = Symbol('keygate.exchange');
type Owned = ServerResponse & { [EXCHANGE]?: Http1Exchange };

/** The exchange a response belongs to, once the pipeline took it. */
export function exchangeOf(res: ServerResponse): Http1Exchange | undefined {
  return (res as Owned)[EXCHANGE];
}

/** Answers held on one connection at most, and in the whole process (see holdAnswer). */
export const MAX_HELD_PER_CONNECTION = 32;
export const MAX_HELD = 10_000;
const HELD = Symbol('keygate.held');
type HoldingSocket = TLSSocket & { [HELD]?: number };
let heldTotal = 0;

/** Answers held right now (tests, metrics). */
export function heldAnswers(): number {
  return heldTotal;
}

export class Http1Exchange implements Exchange {
  readonly protocol = 'http/1.1' as const;
  private refused: ((err: KeygateError) => void) | undefined;
  private holdMs = 0;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** The server's checkContinue path: no `100 Continue` has been sent yet. */
    readonly expectsContinue = false,
  ) {}

  get method(): string {
    return this.req.method ?? 'GET';
  }
  get target(): string {
    return this.req.url ?? '';
  }
  /** HTTP/1.0 may omit Host. */
  get hostOptional(): boolean {
    return this.req.httpVersionMinor === 0 && this.req.httpVersionMajor === 1;
  }
  get rawHeaders(): readonly string[] {
    return this.req.rawHeaders;
  }
  get tls(): TLSSocket {
    return this.req.socket as TLSSocket;
  }
  get body(): IncomingMessage {
    return this.req;
  }
  get statusCode(): number {
    return this.res.headersSent ? this.res.statusCode : 0;
  }
  get headersSent(): boolean {
    return this.res.headersSent;
  }
  get completed(): boolean {
    return this.res.writableFinished;
  }
  get aborted(): boolean {
    // A request read to its end is destroyed by Node (autoDestroy); that is not the client leaving.
    return this.res.destroyed || (this.req.destroyed && !this.req.complete);
  }

  respond(status: number, headers: readonly string[], body: string): void {
    if (this.holdMs > 0) return this.respondLater(status, headers, body);
    this.res.writeHead(status, headers as string[]);
    this.res.end(body);
  }

  /**
   * The next answer waits `ms` (a client over its budget of failed authentications). A client
   * that pipelines its guesses gets its answers, and so sends its next guesses, only that much
   * later: it pays in time, keygate's CPU stays with everyone else. The more answers are held,
   * the longer each waits (one millisecond per held answer), so that held answers leave at
   * most ~1,000 a second however many connections a sprayer opens. Bounded per connection and
   * in the process; past either bound the caller cuts the connection instead (false).
   */
  holdAnswer(ms: number): boolean {
    const socket = this.req.socket as HoldingSocket;
    const held = socket[HELD] ?? 0;
    if (held >= MAX_HELD_PER_CONNECTION || heldTotal >= MAX_HELD) return false;
    socket[HELD] = held + 1;
    heldTotal++;
    this.holdMs = Math.max(ms, heldTotal);
    return true;
  }

  private respondLater(status: number, headers: readonly string[], body: string): void {
    const socket = this.req.socket as HoldingSocket;
    let pending = true;
    const settle = (): boolean => {
      if (!pending) return false;
      pending = false;
      socket[HELD]!--;
      heldTotal--;
      return true;
    };
    const timer = setTimeout(() => {
      if (!settle() || this.res.destroyed) return;
      this.res.writeHead(status, headers as string[]);
      this.res.end(body);
    }, this.holdMs);
    this.holdMs = 0;
    // A connection that goes away takes its held answers with it.
    this.res.once('close', () => {
      if (settle()) clearTimeout(timer);
    });
  }
  sendContinue(): void {
    if (this.expectsContinue && !this.res.headersSent) this.res.writeContinue();
  }
  writeHead(status: number, headers: readonly string[]): void {
    this.res.writeHead(status, headers as string[]);
  }
  write(chunk: Uint8Array): boolean {
    return this.res.write(chunk);
  }
  onDrain(fn: () => void): void {
    this.res.once('drain', fn);
  }
  end(): void {
    // HTTP/1.1 answers carry no trailers here: an upstream's trailers are dropped.
    this.res.end();
  }
  destroy(): void {
    // The connection is what a cut ends on HTTP/1.1. A response queued behind pipelined ones
    // has no socket yet, and on Node 24 its destroy() waits for one that never comes.
    this.res.destroy();
    this.req.socket.destroy();
  }
  onRefused(fn: (err: KeygateError) => void): void {
    this.refused = fn;
    (this.res as Owned)[EXCHANGE] = this;
  }
  /** The HTTP parser refused this request after its head (a broken body, a timeout). */
  refuse(err: KeygateError): boolean {
    if (!this.refused) return false;
    this.refused(err);
    return true;
  }
  onClose(fn: () => void): void {
    // Node emits 'close' exactly once, whether the answer finished or the client went away.
    this.res.once('close', fn);
  }
}

// The Exchange over an HTTP/1.1 Upgrade request (RFC 6455 opening handshake). Node hands the
// raw socket over before any answer: keygate writes its own answers on it — a refusal
// (problem+json, then the connection closes), the upstream's refusal relayed, or the upstream's
// 101 — and once switched, the tunnel terminal owns the bytes and says when the exchange is over.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Exchange, UpgradeIo } from '../vocabulary/exchange.js';

/** A GET with `Upgrade: websocket` (any case, possibly among other tokens). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const up = req.headers.upgrade;
  return req.method === 'GET' && typeof up === 'string' && /(?:^|,)\s*websocket\s*(?:,|$)/i.test(up);
}

const ignore = (): void => undefined;

export class UpgradeExchange implements Exchange, UpgradeIo {
  readonly protocol = 'websocket' as const;
  readonly expectsContinue = false;
  readonly hasBody = false;
  private status = 0;
  private done = false;
  private finished = false;
  private switched = false;
  private readonly closeFns: Array<() => void> = [];

  constructor(
    readonly req: IncomingMessage,
    readonly socket: Duplex,
    readonly head: Buffer,
  ) {
    socket.on('error', ignore);
    // Until the upstream switched, the exchange ends with the client's connection; after, the
    // tunnel ends it (end or destroy), once its own books are closed.
    socket.once('close', () => {
      if (!this.switched) this.settle();
    });
  }

  get upgrade(): UpgradeIo {
    return this;
  }
  get method(): string {
    return this.req.method ?? 'GET';
  }
  get target(): string {
    return this.req.url ?? '';
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
    return this.status;
  }
  get headersSent(): boolean {
    return this.status !== 0;
  }
  get completed(): boolean {
    return this.finished;
  }
  get aborted(): boolean {
    return this.done || this.socket.destroyed;
  }

  respond(status: number, headers: readonly string[], body: string): void {
    if (this.headersSent || this.socket.destroyed) return;
    // The body's end is the connection's end; the problem writer gave content-length anyway.
    this.writeHead(status, headers);
    this.end(body);
  }
  sendContinue(): void {}
  /** 101 keeps the connection for the tunnel; any other status closes it after the answer. */
  writeHead(status: number, headers: readonly string[]): void {
    if (this.headersSent || this.socket.destroyed) return;
    this.status = status;
    const switching = status === 101;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      if (!switching && headers[i] === 'connection') continue; // ours follows
      head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    if (switching) this.switched = true;
    else head += 'connection: close\r\n';
    this.socket.write(head + '\r\n');
  }
  write(chunk: Uint8Array): boolean {
    return this.socket.destroyed ? true : this.socket.write(chunk);
  }
  onDrain(fn: () => void): void {
    this.socket.once('drain', fn);
  }
  /** A relayed answer is over; or, after a 101, the tunnel closed cleanly. */
  end(last?: readonly string[] | string): void {
    if (this.switched) {
      this.finished = true;
      this.socket.destroy();
      this.settle();
      return;
    }
    this.finished = true;
    this.socket.end(typeof last === 'string' ? last : undefined);
  }
  destroy(): void {
    this.socket.destroy();
    if (this.switched) this.settle();
  }
  onClose(fn: () => void): void {
    if (this.done) fn();
    else this.closeFns.push(fn);
  }

  private settle(): void {
    if (this.done) return;
    this.done = true;
    for (const fn of this.closeFns) fn();
  }
}

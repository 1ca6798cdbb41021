// Exact bytes over a real TLS connection, for the requests Node's HTTP client will not send
// (two Host headers, obs-fold, CL+TE, a bare CONNECT, a body trickled a byte at a time). The
// test writes the request as it wants it, in as many writes and with whatever pauses it
// chooses, and gets back everything keygate sent: the raw bytes, the HTTP/1.1 responses parsed
// from them (informational ones included, so a premature "100 Continue" is visible), and
// whether keygate closed the connection. Every wait is bounded in time and in bytes.
//
// test/integration/support.ts `rawRequest` is the one-shot version of this (one write, text
// back); this helper is for tests that need the framing, the order of responses or the timing.
import tls from 'node:tls';
import { API_HOST } from './harness.js';

export interface RawHttpResponse {
  /** "HTTP/1.1" or "HTTP/1.0". */
  version: string;
  status: number;
  reason: string;
  /** Every header line in order, duplicates kept, names as sent. */
  headerList: Array<[name: string, value: string]>;
  body: Buffer;
  /** False when the connection ended (or the bound passed) before the body did. */
  complete: boolean;
  /** The first value of a header (any letter case), or undefined. */
  header(name: string): string | undefined;
  /** Every value of a header (any letter case). */
  headers(name: string): string[];
  text(): string;
  json<T = Record<string, unknown>>(): T;
}

export interface RawConnectOptions {
  port: number;
  /** PEM of the CA that signed keygate's server certificate. */
  ca: string;
  /** TLS server name (SNI); default api.test. `null` sends no SNI at all. */
  servername?: string | null;
  cert?: string;
  key?: string;
  /** Default http/1.1; keygate offers nothing else on HTTP/1.1 tests. */
  alpn?: string[];
  /** Skip the server-name check (the chain is still verified against `ca`). */
  skipHostnameCheck?: boolean;
  /** Stop collecting after this many bytes from the server; default 1 MiB. */
  maxBytes?: number;
}

/** One step of what the client sends: bytes, a pause, or a half-close. */
export type Step = string | Buffer | { pauseMs: number } | { end: true };

export interface RawExchangeOptions extends RawConnectOptions {
  steps: Step[];
  /** Stop once this many final (non-1xx) responses are complete; default: wait for the close. */
  responses?: number;
  /** Bound on the whole exchange, from the first write; default 5 s. */
  timeoutMs?: number;
}

export interface RawExchange {
  /** Final responses, in order (1xx excluded). */
  responses: RawHttpResponse[];
  /** 1xx responses, in order, with the index of the final response they preceded. */
  informational: Array<RawHttpResponse & { before: number }>;
  /** Everything the server sent. */
  raw: Buffer;
  /** The server ended or reset the connection within the bound. */
  closed: boolean;
  /** How it closed: "end" (FIN), "reset" (RST or TLS alert), or null while open. */
  closedBy: 'end' | 'reset' | null;
  /** The byte bound was reached. */
  truncated: boolean;
  /** The time bound passed before the exchange finished. */
  timedOut: boolean;
}

function response(version: string, status: number, reason: string, headerList: Array<[string, string]>, body: Buffer, complete: boolean): RawHttpResponse {
  const lower = (n: string) => n.toLowerCase();
  return {
    version,
    status,
    reason,
    headerList,
    body,
    complete,
    header: (name) => headerList.find(([n]) => lower(n) === lower(name))?.[1],
    headers: (name) => headerList.filter(([n]) => lower(n) === lower(name)).map(([, v]) => v),
    text: () => body.toString('utf8'),
    json: <T>() => JSON.parse(body.toString('utf8')) as T,
  };
}

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Parses consecutive HTTP/1.x responses from `buf`. `ended` says the connection is over, so a
 * response framed by the close (no Content-Length, not chunked) is complete. Stops at the first
 * byte that does not start a status line; what could not be parsed is left in `rest`.
 */
export function parseResponses(buf: Buffer, ended: boolean): { all: RawHttpResponse[]; rest: Buffer } {
  const all: RawHttpResponse[] = [];
  let at = 0;
  while (at < buf.length) {
    const headEnd = buf.indexOf(HEAD_END, at);
    if (headEnd === -1) break;
    const lines = buf.subarray(at, headEnd).toString('latin1').split('\r\n');
    const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]!);
    if (!m) break;
    const headerList: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headerList.push(colon === -1 ? [line, ''] : [line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    const status = Number(m[2]);
    const find = (n: string) => headerList.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
    let pos = headEnd + HEAD_END.length;
    let body: Buffer = Buffer.alloc(0);
    let complete = true;
    const te = find('transfer-encoding').join(',').toLowerCase();
    const cl = find('content-length')[0];
    if ((status >= 100 && status < 200) || status === 204 || status === 304) {
      // no body
    } else if (te.includes('chunked')) {
      const parts: Buffer[] = [];
      complete = false;
      for (;;) {
        const lineEnd = buf.indexOf(CRLF, pos);
        if (lineEnd === -1) break;
        const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1').split(';')[0]!.trim(), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          // Optional trailer lines, then an empty line: the first CRLF CRLF from the size line on.
          const end = buf.indexOf(HEAD_END, lineEnd);
          if (end === -1) break;
          pos = end + HEAD_END.length;
          complete = true;
          break;
        }
        if (lineEnd + 2 + size + 2 > buf.length) {
          parts.push(buf.subarray(lineEnd + 2, Math.min(buf.length, lineEnd + 2 + size)));
          pos = buf.length;
          break;
        }
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        pos = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (cl !== undefined) {
      const n = Number(cl);
      body = buf.subarray(pos, Math.min(buf.length, pos + n));
      complete = body.length === n;
      pos += body.length;
    } else {
      body = buf.subarray(pos);
      complete = ended;
      pos = buf.length;
    }
    all.push(response(m[1]!, status, m[3] ?? '', headerList, body, complete));
    at = pos;
    if (!complete) break;
  }
  return { all, rest: buf.subarray(at) };
}

/** A TLS connection the test drives write by write. */
export class RawConnection {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private waiters: Array<() => void> = [];
  closedBy: 'end' | 'reset' | null = null;
  truncated = false;

  private constructor(
    readonly socket: tls.TLSSocket,
    private readonly maxBytes: number,
  ) {
    socket.on('data', (c: Buffer) => {
      if (this.bytes >= this.maxBytes) {
        this.truncated = true;
        return;
      }
      this.chunks.push(c);
      this.bytes += c.length;
      this.wake();
    });
    socket.on('end', () => this.close('end'));
    socket.on('close', () => this.close('end'));
    socket.on('error', () => this.close('reset'));
  }

  /** Resolves once the TLS handshake is done; rejects when it fails. */
  static open(opts: RawConnectOptions): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const servername = opts.servername === undefined ? API_HOST : opts.servername;
      const socket = tls.connect({
        host: '127.0.0.1',
        port: opts.port,
        ...(servername === null ? {} : { servername }),
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        ALPNProtocols: opts.alpn ?? ['http/1.1'],
        ...(opts.skipHostnameCheck || servername === null ? { checkServerIdentity: () => undefined } : {}),
      });
      const onError = (err: Error) => reject(err);
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        socket.off('error', onError);
        resolve(new RawConnection(socket, opts.maxBytes ?? 1 << 20));
      });
    });
  }

  private close(how: 'end' | 'reset'): void {
    if (this.closedBy === null) this.closedBy = how;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  get closed(): boolean {
    return this.closedBy !== null;
  }

  get raw(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Writes bytes; resolves when they are handed to TLS (not when the server read them). */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed || this.socket.destroyed) return resolve();
      this.socket.write(data, () => resolve());
    });
  }

  /** Half-close: the client sends no more. */
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  parsed(): { responses: RawHttpResponse[]; informational: Array<RawHttpResponse & { before: number }> } {
    const { all } = parseResponses(this.raw, this.closed);
    const responses: RawHttpResponse[] = [];
    const informational: Array<RawHttpResponse & { before: number }> = [];
    for (const r of all) {
      if (r.status >= 100 && r.status < 200 && r.status !== 101) informational.push({ ...r, before: responses.length });
      else responses.push(r);
    }
    return { responses, informational };
  }

  /** Waits until `done()` holds, the connection closes, or `timeoutMs` passes; says whether `done()` held. */
  async waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.closed || this.truncated) return done();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** Waits for `n` complete final responses (bounded). */
  waitForResponses(n: number, timeoutMs: number): Promise<boolean> {
    return this.waitFor(() => this.parsed().responses.filter((r) => r.complete).length >= n, timeoutMs);
  }

  /** Waits for the server to close (bounded); says whether it did. */
  waitForClose(timeoutMs: number): Promise<boolean> {
    return this.waitFor(() => this.closed, timeoutMs);
  }

  /** Waits for any byte at all from the server (bounded). */
  waitForBytes(timeoutMs: number): Promise<boolean> {
    return this.waitFor(() => this.bytes > 0, timeoutMs);
  }

  snapshot(timedOut = false): RawExchange {
    return { ...this.parsed(), raw: this.raw, closed: this.closed, closedBy: this.closedBy, truncated: this.truncated, timedOut };
  }
}

/**
 * Opens a connection, runs the steps (writes, pauses, a half-close), then collects until the
 * server closes, `responses` final responses are complete, or the time bound passes. The
 * connection is destroyed before this returns.
 */
export async function rawExchange(opts: RawExchangeOptions): Promise<RawExchange> {
  const conn = await RawConnection.open(opts);
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  try {
    for (const step of opts.steps) {
      if (conn.closed) break;
      if (typeof step === 'string' || Buffer.isBuffer(step)) await conn.write(step);
      else if ('pauseMs' in step) await conn.waitFor(() => false, Math.min(step.pauseMs, Math.max(0, deadline - Date.now())));
      else conn.end();
    }
    const left = Math.max(0, deadline - Date.now());
    const finished = opts.responses === undefined ? await conn.waitForClose(left) : await conn.waitForResponses(opts.responses, left);
    return conn.snapshot(!finished);
  } finally {
    conn.destroy();
  }
}

/** A request head from lines, CRLF-terminated, with the empty line that ends it. */
export function head(...lines: string[]): string {
  return lines.map((l) => l + '\r\n').join('') + '\r\n';
}

// The audit log's writer: whole lines copied into large reusable buffers, each buffer handed to
// one asynchronous fs.write when it is full enough (or at least once a second), one write in
// flight at a time, in order. The request path only copies its line's bytes.
//
// Why not sonic-boom (pino.destination), which this replaced: its write() appends to a string
// and takes Buffer.byteLength of the whole pending string on every line, which flattens the
// growing rope each time; with lines of ~400 bytes batched to 4 KiB that cost ~6 µs of CPU per
// line in a micro-benchmark and 8–10 % of keygate's CPU under load (bench/RESULTS.md), against
// ~1 µs here. A line copied into a Buffer is encoded once and never touched again.
import { closeSync, mkdirSync, openSync, write as fsWrite } from 'node:fs';
import { dirname } from 'node:path';

/** A buffer is written once it holds this much (fewer, larger writes under load). */
const FLUSH_BYTES = 32 * 1024;
/** Each buffer's size: a typical line always fits beside FLUSH_BYTES of others. */
const CHUNK_BYTES = 64 * 1024;
/** Spare buffers kept for reuse; more in flight are allocated and dropped afterwards. */
const SPARES = 4;
/** How soon a write that met a full pipe (EAGAIN on a non-blocking stdout) is tried again. */
const RETRY_MS = 10;

export interface LineWriterOptions {
  /** A file to append to (created with its folder), or an open descriptor (1, 2). */
  file?: string;
  fd?: number;
  /** Lines wait at most this long in memory. Default 1000 ms. */
  flushIntervalMs?: number;
  /** A write that failed for good (not EAGAIN). Default: thrown, as an unhandled 'error' was. */
  onError?: (err: Error) => void;
}

export class LineWriter {
  private readonly fd: number;
  private readonly ownsFd: boolean;
  private cur: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  private off = 0;
  /** Sealed buffers waiting for their write, oldest first: [buffer, bytes]. */
  private readonly queue: Array<[Buffer, number]> = [];
  private readonly spares: Buffer[] = [];
  private writing = false;
  private closed = false;
  private waiters: Array<() => void> = [];
  private readonly timer: NodeJS.Timeout;
  private readonly onError: (err: Error) => void;

  constructor(opts: LineWriterOptions) {
    if (opts.fd !== undefined) {
      this.fd = opts.fd;
      this.ownsFd = false;
    } else {
      // Opened here, synchronously, once: a path that cannot be opened fails the start with
      // its reason instead of an error event later.
      mkdirSync(dirname(opts.file!), { recursive: true });
      this.fd = openSync(opts.file!, 'a');
      this.ownsFd = true;
    }
    this.onError =
      opts.onError ??
      ((err) => {
        throw err;
      });
    this.timer = setInterval(() => this.seal(), opts.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  /** Appends text made of whole lines. */
  write(text: string): void {
    if (this.closed) throw new Error('audit destination closed');
    // UTF-8 takes at most 3 bytes per UTF-16 unit: checked against that, a line never splits.
    const worst = text.length * 3;
    if (this.off + worst > CHUNK_BYTES) {
      this.seal();
      if (worst > CHUNK_BYTES) {
        // A line longer than a buffer (a management event with many problems): on its own.
        const b = Buffer.from(text, 'utf8');
        this.queue.push([b, b.length]);
        this.kick();
        return;
      }
    }
    this.off += this.cur.write(text, this.off, 'utf8');
    if (this.off >= FLUSH_BYTES) this.seal();
  }

  /** Resolves once everything written so far is on its way to the file (handed to write(2)). */
  flush(): Promise<void> {
    this.seal();
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await this.flush();
    this.closed = true;
    if (this.ownsFd) closeSync(this.fd);
  }

  /** The current buffer goes to the queue; a fresh (or spare) one takes its place. */
  private seal(): void {
    if (this.off === 0) return;
    this.queue.push([this.cur, this.off]);
    this.cur = this.spares.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
    this.off = 0;
    this.kick();
  }

  private kick(): void {
    if (this.writing) return;
    const next = this.queue[0];
    if (!next) {
      const w = this.waiters;
      this.waiters = [];
      for (const resolve of w) resolve();
      return;
    }
    this.writing = true;
    this.writeFrom(next[0], 0, next[1]);
  }

  private writeFrom(buf: Buffer, start: number, end: number): void {
    fsWrite(this.fd, buf, start, end - start, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN' || err.code === 'EBUSY') {
          setTimeout(() => this.writeFrom(buf, start, end), RETRY_MS);
          return;
        }
        this.done(buf);
        this.onError(err);
        return;
      }
      // A short write (a pipe): the rest follows before anything else.
      if (start + n < end) return this.writeFrom(buf, start + n, end);
      this.done(buf);
    });
  }

  private done(buf: Buffer): void {
    this.queue.shift();
    if (buf.length === CHUNK_BYTES && this.spares.length < SPARES) this.spares.push(buf);
    this.writing = false;
    this.kick();
  }
}

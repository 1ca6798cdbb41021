// How a request body reaches an upstream connection without letting a slow client hold one.
// An upstream connection is taken when the request is dispatched and kept until the body is
// sent and the answer is back; a client trickling its body one byte a second would keep it
// for as long as it likes, and 130 such clients took every connection of a route in v0.1.
// Two rules bound that:
//   - a body with a Content-Length up to routes[].bufferBodyBytes (64 KiB) is read whole
//     first, and dispatched only once it is complete: a trickling client holds a socket of
//     its own and a little memory, never an upstream connection. The bytes buffered at once
//     are capped process-wide (MAX_BUFFERED); past the cap a body streams like a large one.
//   - any other body (larger, chunked, or past the cap) streams, but at most
//     routes[].streamingUploads of them per upstream pool at once (half its connections by
//     default); the others wait for a slot, within listen.limits.requestTimeout. The other
//     half of the pool stays for requests whose bodies have arrived.
import type { Readable } from 'node:stream';
import type { Upstream } from './upstream-pools.js';

export interface BodyPolicy {
  /** Bodies with a Content-Length up to this many bytes are read whole before dispatch; 0: none. */
  readonly bufferBytes: number;
  /** Bodies streamed at once to the route's upstream pool. */
  readonly streamingSlots: number;
}

/** Bytes of request bodies held in memory at once, all routes together. */
export const MAX_BUFFERED = 64 * 1024 * 1024;
let buffered = 0;

/** Reserves `bytes` of the process-wide buffer budget; false when it would go past the cap. */
export function reserveBuffer(bytes: number): boolean {
  if (buffered + bytes > MAX_BUFFERED) return false;
  buffered += bytes;
  return true;
}

export function releaseBuffer(bytes: number): void {
  buffered -= bytes;
}

/** Bytes buffered right now (tests, metrics). */
export function bufferedBytes(): number {
  return buffered;
}

/**
 * Reads `body` whole (it announced `length` bytes). `done(undefined)` when the client left or
 * the stream failed before the end: there is nothing to forward then, and the pipeline has
 * already answered (a request timeout) or has nobody to answer.
 */
export function readWhole(body: Readable, length: number, done: (data: Buffer | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (data: Buffer | undefined) => {
    if (settled) return;
    settled = true;
    body.off('data', onData);
    body.off('end', onEnd);
    body.off('error', onFail);
    body.off('close', onFail);
    done(data);
  };
  const onData = (c: Buffer) => {
    size += c.length;
    // Node's parser stops at Content-Length; more would be a bug, never trusted.
    if (size > length) return settle(undefined);
    chunks.push(c);
  };
  const onEnd = () => settle(size === length ? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)) : undefined);
  const onFail = () => settle(undefined);
  body.on('data', onData);
  body.once('end', onEnd);
  body.once('error', onFail);
  body.once('close', onFail);
}

interface Waiter {
  run: () => void;
  cancelled: boolean;
}

/** Streaming slots of one upstream pool. */
export class StreamingSlots {
  private used = 0;
  private readonly queue: Waiter[] = [];
  constructor(public capacity: number) {}

  /** Runs `fn` once a slot is free; the returned function gives the slot back (or leaves the queue). Idempotent. */
  acquire(fn: () => void): () => void {
    const w: Waiter = { run: fn, cancelled: false };
    let held = false;
    let released = false;
    w.run = () => {
      held = true;
      fn();
    };
    if (this.used < this.capacity) {
      this.used++;
      w.run();
    } else {
      this.queue.push(w);
    }
    return () => {
      if (released) return;
      released = true;
      if (held) this.next();
      else w.cancelled = true;
    };
  }

  private next(): void {
    for (let w = this.queue.shift(); w; w = this.queue.shift()) {
      if (w.cancelled) continue;
      w.run();
      return;
    }
    this.used--;
  }

  get inUse(): number {
    return this.used;
  }
  get waiting(): number {
    return this.queue.filter((w) => !w.cancelled).length;
  }
}

const SLOTS = new WeakMap<Upstream, StreamingSlots>();

/** The slots of an upstream pool; a reload that changes the capacity applies it to the same slots. */
export function slotsFor(upstream: Upstream, capacity: number): StreamingSlots {
  let s = SLOTS.get(upstream);
  if (!s) SLOTS.set(upstream, (s = new StreamingSlots(capacity)));
  else s.capacity = capacity;
  return s;
}

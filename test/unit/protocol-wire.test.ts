// The small wire rules keygate follows as an HTTP/2, gRPC and WebSocket proxy, checked
// byte by byte: gRPC's content-type, status mapping, grpc-message encoding and grpc-timeout;
// where gRPC messages end in a body; where WebSocket frames end, in chunks cut anywhere; the
// Close frames keygate writes; and the HTTP/2 header object (connection-specific fields gone).
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { GrpcMessageCursor } from '../../src/forward/grpc-frames.js';
import { closeFrame, FrameTracker } from '../../src/forward/ws-frames.js';
import { encodeGrpcMessage, formatGrpcTimeout, grpcStatusFor, isGrpcContentType, parseGrpcTimeout } from '../../src/transport/grpc.js';
import { h2Headers } from '../../src/transport/http2.js';

describe('gRPC', () => {
  it.each([
    ['application/grpc', true],
    ['application/grpc+proto', true],
    ['application/grpc;charset=utf-8', true],
    ['application/grpc-web', false],
    ['application/grpc-web+proto', false],
    ['application/json', false],
    [undefined, false],
  ])('content-type %s is gRPC: %s', (ct, yes) => expect(isGrpcContentType(ct)).toBe(yes));

  it.each([
    [401, 16],
    [403, 7],
    [429, 8],
    [503, 14],
    [504, 4],
    [421, 14],
    [502, 14],
    [404, 12],
    [400, 3],
    [408, 4],
    [431, 8],
    [500, 13],
  ])('HTTP %i is grpc-status %i', (http, grpc) => expect(grpcStatusFor(http)).toBe(grpc));

  it('percent-encodes grpc-message as the gRPC spec says, and decodeURI gives the text back', () => {
    const text = 'No scope allows POST /a.B/C; 100% — ünïcode\nline';
    const wire = encodeGrpcMessage(text);
    expect(wire).toMatch(/^[\x20-\x7e]*$/);
    expect(wire).toContain('/a.B/C;'); // printable ASCII stays as it is (not encodeURIComponent)
    expect(wire).toContain('100%25');
    expect(decodeURIComponent(wire)).toBe(text);
    expect(encodeGrpcMessage('plain text')).toBe('plain text');
  });

  it.each([
    ['5S', 5_000],
    ['300m', 300],
    ['2M', 120_000],
    ['1H', 3_600_000],
    ['1500u', 1.5],
    ['99999999m', 99_999_999],
  ])('grpc-timeout %s is %f ms', (v, ms) => expect(parseGrpcTimeout(v)).toBe(ms));

  it.each(['', '5', 'S', '5s', '123456789m', '-5S', '5.5S', ' 5S'])('grpc-timeout %j is not one', (v) => expect(parseGrpcTimeout(v)).toBeUndefined());

  it('writes the remaining budget in whole milliseconds while it fits in 8 digits, then in seconds', () => {
    expect(formatGrpcTimeout(4_988.7)).toBe('4988m');
    expect(formatGrpcTimeout(0.2)).toBe('1m');
    expect(formatGrpcTimeout(2_000_000_000)).toBe('2000000S');
    expect(parseGrpcTimeout(formatGrpcTimeout(123_456))).toBe(123_456);
  });
});

function grpcMessage(payload: number): Buffer {
  const b = Buffer.alloc(5 + payload, 0x61);
  b[0] = 0;
  b.writeUInt32BE(payload, 1);
  return b;
}

describe('GrpcMessageCursor', () => {
  it('knows where messages end however the body is cut', () => {
    const body = Buffer.concat([grpcMessage(3), grpcMessage(0), grpcMessage(70_000), grpcMessage(1)]);
    const ends = new Set([8, 13, 13 + 70_005, body.length]);
    const wrong: string[] = [];
    for (const step of [1, 2, 5, 7, 4096]) {
      const c = new GrpcMessageCursor();
      for (let at = 0; at < body.length; at += step) {
        const pos = Math.min(body.length, at + step);
        c.feed(body.subarray(at, pos));
        if (c.atBoundary !== ends.has(pos)) wrong.push(`step ${step} at ${pos}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

/** A WebSocket frame as a client (masked) or server (unmasked) writes it. */
function frame(opcode: number, payload: Buffer, masked: boolean, fin = true): Buffer {
  const len = payload.length;
  const head = [(fin ? 0x80 : 0) | opcode];
  const m = masked ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (len < 126) head.push(m | len);
  else if (len < 65_536) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(len);
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(BigInt(len));
  }
  if (!masked) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  return Buffer.concat([Buffer.from(head), ext, key, Buffer.from(payload.map((b, i) => b ^ key[i % 4]!))]);
}

describe('FrameTracker', () => {
  const close1000 = Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]); // 1000 "bye"
  const stream = (masked: boolean) => [frame(0x1, Buffer.from('hello'), masked, false), frame(0x9, Buffer.alloc(0), masked), frame(0x0, Buffer.alloc(300, 1), masked), frame(0x2, Buffer.alloc(70_000, 2), masked), frame(0x8, close1000, masked)];

  it.each([true, false])('finds every frame end, in chunks of any size (masked %s), and the Close code', (masked) => {
    const frames = stream(masked);
    const all = Buffer.concat(frames);
    const ends = new Set<number>();
    let pos = 0;
    for (const f of frames) ends.add((pos += f.length));
    const wrong: string[] = [];
    for (const step of [1, 3, 13, 1000, all.length]) {
      const t = new FrameTracker();
      for (let at = 0; at < all.length; at += step) {
        const end = Math.min(all.length, at + step);
        t.feed(all.subarray(at, end));
        if (t.atBoundary !== ends.has(end)) wrong.push(`step ${step} at ${end}`);
      }
      expect(t.closeCode, `step ${step}`).toBe(1000);
    }
    expect(wrong).toEqual([]);
  });

  it('stops at the first frame end in a chunk when asked', () => {
    const [a, b] = [frame(0x1, Buffer.from('abc'), true), frame(0x1, Buffer.from('defgh'), true)];
    const t = new FrameTracker();
    expect(t.feed(a.subarray(0, 4), true)).toBe(-1); // still inside the first frame
    const rest = Buffer.concat([a.subarray(4), b]);
    expect(t.feed(rest, true)).toBe(a.length - 4);
    expect(t.atBoundary).toBe(true);
  });

  it('a Close without a status code is 1005', () => {
    const t = new FrameTracker();
    t.feed(frame(0x8, Buffer.alloc(0), false));
    expect(t.closeCode).toBe(1005);
  });
});

/** ws's own frame parser: exported by ws, not declared in @types/ws. */
const Receiver = (ws as unknown as { Receiver: new (o: { isServer: boolean; maxPayload: number }) => { write(b: Buffer): boolean; on(e: 'conclude', fn: (code: number, reason: Buffer) => void): void } }).Receiver;

describe('closeFrame', () => {
  it.each([true, false])('is a valid Close 1001 "going away" that ws reads (masked %s)', async (masked) => {
    // ws's own frame parser: a server-side Receiver reads masked frames, a client-side one unmasked.
    const receiver = new Receiver({ isServer: masked, maxPayload: 1024 });
    const got = new Promise<[number, string]>((resolve) => receiver.on('conclude', (code: number, reason: Buffer) => resolve([code, reason.toString()])));
    receiver.write(closeFrame(1001, 'going away', masked));
    expect(await got).toEqual([1001, 'going away']);
  });

  it('masks with a fresh key each time', () => {
    expect(closeFrame(1001, 'x', true).subarray(2, 6).equals(closeFrame(1001, 'x', true).subarray(2, 6))).toBe(false);
  });
});

describe('h2Headers', () => {
  it('drops connection-specific fields and keeps repeated ones as arrays', () => {
    const h = h2Headers(['content-type', 'text/plain', 'connection', 'close', 'keep-alive', 'timeout=5', 'transfer-encoding', 'chunked', 'upgrade', 'x', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'set-cookie', 'c=3'], { ':status': 200 });
    expect(h).toEqual({ ':status': 200, 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2', 'c=3'] });
  });
});

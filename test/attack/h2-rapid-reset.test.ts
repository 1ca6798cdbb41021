// CVE-2023-44487 in its sharpest form: each stream's HEADERS and its RST_STREAM in one write,
// so nghttp2 takes and closes the stream before Node can hand it over. Node's own client
// cannot be made to do this reliably (it may drop a stream cancelled before its HEADERS left,
// and TLS record boundaries decide the rest), so the frames are written by hand: HPACK with
// static-table entries and one literal, which is all a request needs. keygate must still count
// those streams as premature and close the connection with GOAWAY ENHANCE_YOUR_CALM; the twin,
// the same number of streams that are answered, keeps it open.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETUP_TIMEOUT_MS, startTarget, type Target, type Tokens } from './support.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const TYPE = { data: 0x0, headers: 0x1, rst: 0x3, settings: 0x4, goaway: 0x7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ENHANCE_YOUR_CALM = 0xb;
const CANCEL = 0x8;
/** The config below: the rule looks at the connection once half of this many streams closed early. */
const TOTAL = 40;

let t: Target & { tokens: Tokens };

beforeAll(async () => {
  t = await startTarget({
    config: { listen: { http2: { prematureResetTotalStreams: TOTAL, maxConcurrentStreams: 4 } } },
    tokens: { svc: { roles: ['viewer'] } },
  });
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** A string literal without Huffman coding (RFC 7541 §5.2); values here are under 127 bytes. */
function literal(s: string): Buffer {
  return Buffer.concat([Buffer.from([s.length]), Buffer.from(s)]);
}

/**
 * GET https://api.test/api/items with the token: :method GET (static 2), :scheme https (7),
 * :path / (4, then the real path as a literal with the name of entry 4), :authority (name 1).
 * Literal fields "without indexing" (0x0N), so every block decodes the same on its own.
 */
function requestBlock(key: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x82, 0x87]),
    Buffer.from([0x04]), literal('/api/items'),
    Buffer.from([0x01]), literal('api.test'),
    Buffer.from([0x00]), literal('x-api-key'), literal(key),
  ]);
}

interface Seen {
  goaway?: number;
  /** Streams that got a HEADERS frame back (an answer). */
  answered: Set<number>;
  closed: boolean;
}

/** An h2 connection that records what the server sends: GOAWAY's code and answered streams. */
async function open(): Promise<{ socket: tls.TLSSocket; seen: Seen }> {
  const socket = tls.connect({ host: '127.0.0.1', port: t.proxy.port, servername: 'api.test', ca: t.env.serverCa.certPem, ALPNProtocols: ['h2'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  expect(socket.alpnProtocol).toBe('h2');
  const seen: Seen = { answered: new Set(), closed: false };
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      if (type === TYPE.goaway && seen.goaway === undefined) seen.goaway = payload.readUInt32BE(4);
      if (type === TYPE.headers) seen.answered.add(stream);
      buf = buf.subarray(9 + len);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => (seen.closed = true));
  socket.write(Buffer.concat([PREFACE, frame(TYPE.settings, 0, 0, Buffer.alloc(0))]));
  return { socket, seen };
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

describe('rapid reset with HEADERS and RST_STREAM in one write', () => {
  it('closes the connection with GOAWAY ENHANCE_YOUR_CALM, though Node never handed the streams over', async () => {
    const { socket, seen } = await open();
    try {
      const block = requestBlock(t.tokens.svc!.secret);
      const rst = Buffer.alloc(4);
      rst.writeUInt32BE(CANCEL);
      const frames: Buffer[] = [];
      for (let i = 0; i < TOTAL; i++) {
        const id = 1 + 2 * i;
        frames.push(frame(TYPE.headers, END_HEADERS, id, block), frame(TYPE.rst, 0, id, rst));
      }
      socket.write(Buffer.concat(frames));
      expect(await until(() => seen.goaway !== undefined, 10_000), 'a GOAWAY arrived').toBe(true);
      expect(seen.goaway).toBe(ENHANCE_YOUR_CALM);
      expect(await until(() => seen.closed, 10_000), 'connection closed').toBe(true);
    } finally {
      socket.destroy();
    }
  }, 30_000);

  it('the twin: as many streams, each answered before the next, keep the connection open', async () => {
    const { socket, seen } = await open();
    try {
      const block = requestBlock(t.tokens.svc!.secret);
      for (let i = 0; i < TOTAL; i++) {
        const id = 1 + 2 * i;
        socket.write(frame(TYPE.headers, END_HEADERS | END_STREAM, id, block));
        expect(await until(() => seen.answered.has(id), 10_000), `stream ${id} answered`).toBe(true);
      }
      expect(seen.goaway).toBeUndefined();
      expect(seen.closed).toBe(false);
    } finally {
      socket.destroy();
    }
  }, 60_000);
});

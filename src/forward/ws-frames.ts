// WebSocket frame headers (RFC 6455 §5.2), followed in one direction of a tunnel without
// copying, unmasking or buffering a payload. The tunnel needs to know two things: where a
// frame ends — a Close of keygate's own (drain, idle) may only be put between frames, since
// control frames can sit between the fragments of a message but never inside a frame — and
// which side sent a Close first, with which code, for the audit line.
import { randomBytes } from 'node:crypto';

const OP_CLOSE = 0x8;

export class FrameTracker {
  /** Payload bytes of the current frame still to come. */
  private payloadLeft = 0;
  /** Header bytes gathered so far (a header is 2–14 bytes and may straddle chunks). */
  private readonly head = Buffer.alloc(14);
  private headLen = 0;
  private opcode = 0;
  private mask: Buffer | undefined;
  private closeBytes: number[] | undefined;
  private payloadSeen = 0;
  /** Status code of the first Close frame seen (1005: a Close without one), else undefined. */
  closeCode: number | undefined;

  get atBoundary(): boolean {
    return this.payloadLeft === 0 && this.headLen === 0;
  }

  /**
   * Follows `chunk`. With `stopAtFrameEnd`, stops at the first frame end inside it and returns
   * the offset just after it; otherwise (or when no frame ends in it) returns -1.
   */
  feed(chunk: Uint8Array, stopAtFrameEnd = false): number {
    let i = 0;
    while (i < chunk.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - i);
        if (this.closeBytes && this.closeBytes.length < 2) this.readCloseCode(chunk, i, n);
        this.payloadLeft -= n;
        this.payloadSeen += n;
        i += n;
        if (this.payloadLeft === 0) {
          this.frameEnded();
          if (stopAtFrameEnd) return i;
        }
        continue;
      }
      this.head[this.headLen++] = chunk[i++]!;
      if (this.headLen < 2) continue;
      const len7 = this.head[1]! & 0x7f;
      const masked = (this.head[1]! & 0x80) !== 0;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      if (this.headLen < need) continue;
      const length = len7 === 126 ? this.head.readUInt16BE(2) : len7 === 127 ? Number(this.head.readBigUInt64BE(2)) : len7;
      this.opcode = this.head[0]! & 0x0f;
      this.mask = masked ? Buffer.from(this.head.subarray(need - 4, need)) : undefined;
      this.closeBytes = this.opcode === OP_CLOSE && this.closeCode === undefined ? [] : undefined;
      this.payloadSeen = 0;
      this.headLen = 0;
      this.payloadLeft = length;
      if (length === 0) {
        this.frameEnded();
        if (stopAtFrameEnd) return i;
      }
    }
    return -1;
  }

  private readCloseCode(chunk: Uint8Array, at: number, n: number): void {
    for (let k = 0; k < n && this.closeBytes!.length < 2; k++) {
      const pos = this.payloadSeen + k;
      this.closeBytes!.push(chunk[at + k]! ^ (this.mask ? this.mask[pos % 4]! : 0));
    }
  }

  private frameEnded(): void {
    if (this.closeBytes) this.closeCode = this.closeBytes.length === 2 ? (this.closeBytes[0]! << 8) | this.closeBytes[1]! : 1005;
    this.closeBytes = undefined;
  }
}

/**
 * A Close frame with a status code and a short reason. Frames towards a server must be masked
 * (RFC 6455 §5.3) with a fresh, unpredictable key; frames towards a client must not be.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason, 'utf8').subarray(0, 123)]);
  if (!masked) return Buffer.concat([Buffer.from([0x80 | OP_CLOSE, payload.length]), payload]);
  const key = randomBytes(4);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i]! ^ key[i % 4]!;
  return Buffer.concat([Buffer.from([0x80 | OP_CLOSE, 0x80 | payload.length]), key, body]);
}

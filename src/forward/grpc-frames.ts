// Where gRPC's length-prefixed messages end in a response body (1 flag byte, 4 bytes of
// length, the payload), counted as bytes pass without copying or decoding them. keygate needs
// only this: a deadline that runs out mid-answer may end the call with grpc-status 4 when the
// body stands at a message boundary; anywhere else the stream must be reset, or the client
// would read half a message.
export class GrpcMessageCursor {
  /** Prefix bytes still to come of the current message (5 at a boundary). */
  private prefixLeft = 5;
  private length = 0;
  private payloadLeft = 0;

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - i);
        this.payloadLeft -= n;
        i += n;
        continue;
      }
      const b = chunk[i++]!;
      if (this.prefixLeft < 5) this.length = this.length * 256 + b; // bytes 2–5: big-endian length
      if (--this.prefixLeft === 0) {
        this.payloadLeft = this.length;
        this.length = 0;
        this.prefixLeft = 5;
      }
    }
  }

  get atBoundary(): boolean {
    return this.prefixLeft === 5 && this.payloadLeft === 0;
  }
}

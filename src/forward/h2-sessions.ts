// HTTP/2 client sessions to one upstream origin (routes with protocol h2c or h2), with
// node:http2 rather than undici: undici 7 drops HTTP/2 response trailers (grpc-status is a
// trailer), cannot do h2c in a Pool, and hides RST_STREAM codes. One session carries many
// streams; another is opened when every open one has as many streams as its peer allows (Node
// would otherwise queue without a bound), up to `maxSessions`, past which a request is refused
// (overloaded) instead of waiting. A session that got GOAWAY, failed or closed is forgotten;
// the next request connects again.
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';

/** Streams per session until the peer's SETTINGS say otherwise (RFC 9113 §6.5.2 suggests ≥ 100). */
const ASSUMED_MAX_STREAMS = 100;
/** As undici's pools: time to connect (and TLS) before the requests on it fail. */
const CONNECT_TIMEOUT_MS = 10_000;
/** An upstream session without traffic for this long is closed gracefully. */
const IDLE_MS = 60_000;

interface Slot {
  readonly session: ClientHttp2Session;
  active: number;
  usable: boolean;
}

export class H2Sessions {
  private slots: Slot[] = [];
  private closed = false;

  constructor(
    readonly origin: string,
    private readonly maxSessions: number,
  ) {}

  /** A stream on a session with room, or undefined when every allowed session is full. */
  request(headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream | undefined {
    const slot = this.pick();
    if (!slot) return undefined;
    const stream = slot.session.request(headers, { endStream });
    slot.active++;
    stream.once('close', () => slot.active--);
    return stream;
  }

  get sessions(): number {
    return this.slots.length;
  }

  /** Graceful: streams in flight finish. */
  close(): void {
    this.closed = true;
    for (const s of this.slots) s.session.close();
    this.slots = [];
  }

  destroy(): void {
    this.closed = true;
    for (const s of this.slots) s.session.destroy();
    this.slots = [];
  }

  private pick(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (!s.usable) continue;
      const limit = s.session.remoteSettings.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS;
      if (s.active < limit && (!best || s.active < best.active)) best = s;
    }
    if (best) return best;
    if (this.closed || this.slots.length >= this.maxSessions) return undefined;
    return this.connect();
  }

  private connect(): Slot {
    const session = http2.connect(this.origin, { settings: { enablePush: false } });
    const slot: Slot = { session, active: 0, usable: true };
    this.slots.push(slot);
    const forget = () => {
      slot.usable = false;
      this.slots = this.slots.filter((s) => s !== slot);
    };
    const connectTimer = setTimeout(() => session.destroy(Object.assign(new Error(`connecting to ${this.origin} timed out`), { code: 'UND_ERR_CONNECT_TIMEOUT' })), CONNECT_TIMEOUT_MS);
    session.once('connect', () => clearTimeout(connectTimer));
    // Errors reach the streams on the session, where the forwarder classifies them.
    session.on('error', forget);
    session.once('goaway', forget);
    session.once('close', () => {
      clearTimeout(connectTimer);
      forget();
    });
    session.setTimeout(IDLE_MS, () => {
      forget();
      session.close();
    });
    return slot;
  }
}

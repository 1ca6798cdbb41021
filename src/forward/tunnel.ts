// A WebSocket tunnel after the upstream's 101: bytes both ways, relayed as they come, with
// back-pressure (a side that cannot keep up pauses the other), never parsed beyond frame
// headers (ws-frames.ts) — extensions, subprotocols and message sizes stay the two ends'
// business. keygate steps in only to end it: after listen.websocket.idleTimeout without a byte,
// or on drain, it finishes the frame in flight in each direction, puts a Close 1001 ("going
// away") in its place and closes, waiting at most CLOSE_GRACE_MS for the peers.
import type { Duplex } from 'node:stream';
import type { TunnelStats } from '../vocabulary/context.js';
import { closeFrame, FrameTracker } from './ws-frames.js';

const CLOSE_GRACE_MS = 1_000;
const GOING_AWAY = 1001;

type Side = 'client' | 'upstream';
/** Both ends are TCP or TLS sockets, whatever the 'upgrade' events type them as. */
type Socketish = Duplex & { setTimeout(ms: number, cb?: () => void): unknown };

interface Direction {
  readonly from: Side;
  readonly src: Duplex;
  readonly dst: Duplex;
  /** Frames written towards the upstream are masked (RFC 6455 §5.3). */
  readonly masked: boolean;
  readonly tracker: FrameTracker;
  /** keygate is ending the tunnel: put our Close at the next frame boundary. */
  closing: boolean;
  /** Our Close went out towards dst; nothing more of src is relayed. */
  sentClose: boolean;
}

export class Tunnel {
  private readonly dirs: [Direction, Direction];
  private closedSockets = 0;
  private errored = false;
  private over = false;
  private grace: NodeJS.Timeout | undefined;
  /** Resolves when both connections are closed. */
  readonly ended: Promise<void>;
  private resolveEnded!: () => void;

  constructor(
    private readonly client: Duplex,
    private readonly up: Duplex,
    readonly stats: TunnelStats,
    private readonly onEnd: (clean: boolean) => void,
  ) {
    this.ended = new Promise((r) => (this.resolveEnded = r));
    this.dirs = [
      { from: 'client', src: client, dst: up, masked: true, tracker: new FrameTracker(), closing: false, sentClose: false },
      { from: 'upstream', src: up, dst: client, masked: false, tracker: new FrameTracker(), closing: false, sentClose: false },
    ];
  }

  /** Starts relaying; `clientHead`/`upHead`: bytes each side sent right after its handshake head. */
  start(clientHead: Buffer, upHead: Buffer, idleMs: number): void {
    for (const d of this.dirs) this.pump(d);
    if (clientHead.length) this.relay(this.dirs[0], clientHead);
    if (upHead.length) this.relay(this.dirs[1], upHead);
    for (const s of [this.client, this.up]) {
      s.on('error', () => (this.errored = true));
      s.once('close', () => this.socketClosed(s));
      // One side's FIN goes on to the other (a half-close, as TCP would carry it).
      s.once('end', () => {
        this.noteClosedBy(s === this.client ? 'client' : 'upstream');
        (s === this.client ? this.up : this.client).end();
      });
    }
    // Any byte either way resets it: the client socket reads one direction and writes the other.
    (this.client as Socketish).setTimeout(idleMs, () => this.shutdown('idle'));
    (this.up as Socketish).setTimeout(0);
    this.client.resume();
    this.up.resume();
  }

  /** Close 1001 to both sides at their next frame boundary, then close (bounded). */
  shutdown(why: 'idle' | 'drain'): void {
    if (this.over || this.grace) return;
    this.noteClosedBy(why);
    for (const d of this.dirs) {
      d.closing = true;
      if (d.tracker.atBoundary) this.sendClose(d);
    }
    this.grace = setTimeout(() => {
      this.client.destroy();
      this.up.destroy();
    }, CLOSE_GRACE_MS);
    this.grace.unref();
  }

  private pump(d: Direction): void {
    d.src.on('data', (chunk: Buffer) => this.relay(d, chunk));
  }

  private relay(d: Direction, chunk: Buffer): void {
    if (d.from === 'client') this.stats.bytesFromClient += chunk.length;
    else this.stats.bytesFromUpstream += chunk.length;
    if (d.sentClose) return;
    if (d.closing) {
      const cut = d.tracker.feed(chunk, true);
      if (cut < 0) {
        d.dst.write(chunk); // still inside a frame: it goes out whole
        return;
      }
      if (cut > 0) d.dst.write(chunk.subarray(0, cut));
      this.sendClose(d);
      return;
    }
    d.tracker.feed(chunk);
    if (d.tracker.closeCode !== undefined) this.noteClosedBy(d.from);
    if (!d.dst.write(chunk)) {
      d.src.pause();
      d.dst.once('drain', () => d.src.resume());
    }
  }

  private sendClose(d: Direction): void {
    d.sentClose = true;
    if (!d.dst.destroyed && d.dst.writable) d.dst.end(closeFrame(GOING_AWAY, 'going away', d.masked));
  }

  private noteClosedBy(who: NonNullable<TunnelStats['closedBy']>): void {
    this.stats.closedBy ??= who;
  }

  private socketClosed(s: Duplex): void {
    if (++this.closedSockets === 1) {
      // The other side gets its FIN and a moment to finish, not for ever.
      const other = s === this.client ? this.up : this.client;
      if (this.errored) this.noteClosedBy('error');
      else this.noteClosedBy(s === this.client ? 'client' : 'upstream');
      other.end();
      const t = setTimeout(() => other.destroy(), CLOSE_GRACE_MS);
      t.unref();
      return;
    }
    if (this.over) return;
    this.over = true;
    clearTimeout(this.grace);
    this.onEnd(!this.errored);
    this.resolveEnded();
  }
}

/** The tunnels open now: counted for keygate_open_tunnels, closed on drain. */
export class Tunnels {
  private readonly open = new Set<Tunnel>();

  get size(): number {
    return this.open.size;
  }

  add(t: Tunnel): void {
    this.open.add(t);
    void t.ended.then(() => this.open.delete(t));
  }

  /** Close 1001 to both sides of every tunnel; resolves once all have ended (each within its grace). */
  async closeAll(): Promise<void> {
    const all = [...this.open];
    for (const t of all) t.shutdown('drain');
    await Promise.all(all.map((t) => t.ended));
  }
}

// HTTP/2 on the HTTPS listener. The https.Server stays the owner of the port, of TLS (SNI,
// client certificates, handshake timeout) and of HTTP/1.1 with all its limits; a connection
// whose ALPN chose h2 is handed to this plain http2.Server (servers.ts). Not
// http2.createSecureServer({ allowHTTP1 }): on Node 20 it ignores the HTTP/1.1 limits given to
// its constructor (headers and request timeouts, keep-alive, header size).
//
// Each stream becomes an Http2Exchange for the one request path. What is HTTP/2's own lives
// here, with Envoy's edge defaults (listen.http2): concurrent streams, header list size and
// count, a connection idle timeout that counts only time without streams (Node's setTimeout
// would kill open but silent streams, and PINGs do not reset it), and the premature-reset rule
// against rapid reset (CVE-2023-44487) on top of nghttp2's own, whose knobs Node 20 ignores.
import http2, { constants, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { KeygateConfig } from '../config/schema.js';
import { kgError } from '../errors/keygate-error.js';
import { Http2Exchange, type StreamLimits } from '../transport/http2.js';
import type { ExchangeHandler } from '../vocabulary/exchange.js';
import type { StreamRefuser } from './stream-refusals.js';

const { NGHTTP2_ENHANCE_YOUR_CALM } = constants;

/** Connection-level receive window: Envoy's 1 MiB (the stream window stays at 64 KiB). */
const CONNECTION_WINDOW = 1 << 20;
/** After the GOAWAY of the premature-reset rule, how long before the connection is cut. */
const GOAWAY_FLUSH_MS = 100;
/** How often idle sessions are looked for, like listen.limits' connection checks on HTTP/1.1. */
const SWEEP_MS = 1_000;

export interface Http2Front {
  /** Takes a TLS connection whose ALPN chose h2. */
  accept(socket: TLSSocket): void;
  /** GOAWAY on every session: streams in flight finish, no new ones start. */
  goAway(): void;
  /** Ends every session now. */
  destroyAll(): void;
  readonly sessions: number;
}

interface SessionState {
  open: number;
  idleSince: number;
  /** Streams that closed, and of those, the premature resets (Envoy's counters). */
  closed: number;
  premature: number;
  /** The highest client stream id handed to keygate so far (0: none yet). */
  lastSeenId: number;
}

/** HPACK's size of a header list (RFC 9113 §6.5.2): name + value + 32 per field. */
function headerListSize(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) n += raw[i]!.length + raw[i + 1]!.length + 32;
  return n;
}

export function createHttp2Front(config: KeygateConfig, handler: ExchangeHandler, refuse: StreamRefuser, forcedMode?: 'clientauth'): Http2Front {
  const h = config.listen.http2;
  const maxHeaderSize = config.listen.limits.maxHeaderSize;
  const limits: StreamLimits = { streamIdleMs: h.streamIdleTimeout, requestBodyMs: config.listen.limits.requestTimeout };
  const server = http2.createServer({
    settings: {
      maxConcurrentStreams: h.maxConcurrentStreams,
      // The hard stop, enforced by nghttp2 with a reset that never reaches keygate. Up to half
      // of it, keygate answers 431 itself (below), audited and counted like on HTTP/1.1.
      maxHeaderListSize: 2 * maxHeaderSize,
      enableConnectProtocol: false,
    },
    // Node counts the four pseudo-headers as pairs too.
    maxHeaderListPairs: h.maxHeaderCount + 4,
  });
  const sessions = new Map<Http2Session, SessionState>();

  server.on('session', (session: ServerHttp2Session) => {
    const st: SessionState = { open: 0, idleSince: performance.now(), closed: 0, premature: 0, lastSeenId: 0 };
    sessions.set(session, st);
    // Protocol errors, resets, floods: Node closes the session; nothing to add but not crashing.
    session.on('error', () => undefined);
    session.once('close', () => sessions.delete(session));
    session.once('connect', () => {
      if (!session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW);
    });
  });

  // Node passes the raw header list as a fourth argument (documented, not in @types/node).
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders?: string[]) => {
    const session = stream.session!;
    const st = sessions.get(session);
    const raw = rawHeaders ?? Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((one) => [k, one]) : [k, String(v)]));
    const x = new Http2Exchange(stream, headers, flags, raw, limits);
    if (st) {
      countUnseen(session, st, (stream.id ?? 0) - 2);
      st.lastSeenId = Math.max(st.lastSeenId, stream.id ?? 0);
      st.open++;
      stream.once('close', () => streamClosed(session, st, x));
    }
    // A stream the client already reset still arrives here (rapid reset): do no work for it.
    if (stream.destroyed) return;
    if (headerListSize(raw) > maxHeaderSize) {
      refuse(x, kgError('KG_ERR_HEADERS_TOO_LARGE'));
      return;
    }
    handler(x, forcedMode);
  });

  function streamClosed(session: Http2Session, st: SessionState, x: Http2Exchange): void {
    st.open--;
    if (st.open === 0) st.idleSince = performance.now();
    // Envoy's rule: a stream keygate cut itself does not count; one that ended without an
    // answer within the minimum lifetime is premature.
    if (x.cut) return;
    st.closed++;
    if (!x.headersSent && performance.now() - x.openedAt < h.prematureResetMinLifetime) st.premature++;
    judge(session, st);
  }

  /**
   * Streams nghttp2 took but Node never handed over: the client reset them in the same read as
   * their HEADERS (how often depends on TLS record boundaries and the Node version). They
   * cost keygate nothing, but they are the attack, so they count as premature. Node hands
   * streams over in id order, and client ids are odd, so the gap below `upTo` is exact.
   */
  function countUnseen(session: Http2Session, st: SessionState, upTo: number): void {
    if (upTo <= st.lastSeenId) return;
    const unseen = Math.ceil((upTo - st.lastSeenId) / 2);
    st.lastSeenId = upTo;
    st.closed += unseen;
    st.premature += unseen;
    judge(session, st);
  }

  /** Past the total, more than half premature closes the connection; before it, as soon as half the total is premature. */
  function judge(session: Http2Session, st: SessionState): void {
    const tooMany = st.closed < h.prematureResetTotalStreams ? st.premature * 2 >= h.prematureResetTotalStreams : st.premature * 2 >= st.closed;
    if (tooMany && !session.destroyed && !session.closed) {
      // GOAWAY first and a moment for it to leave (destroy() right away would drop it), then
      // the connection goes, whatever the client still has in flight.
      session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
      session.close();
      setTimeout(() => session.destroy(), GOAWAY_FLUSH_MS).unref();
    }
  }

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [session, st] of sessions) {
      // Between reads every stream nghttp2 took has been handed over or was never going to be.
      if (!session.destroyed) countUnseen(session, st, session.state.lastProcStreamID ?? 0);
      if (st.open === 0 && !session.closed && now - st.idleSince >= h.idleTimeout) session.close();
    }
  }, SWEEP_MS);
  sweep.unref();

  return {
    accept: (socket) => server.emit('connection', socket),
    goAway: () => {
      for (const session of sessions.keys()) if (!session.closed) session.close();
    },
    destroyAll: () => {
      clearInterval(sweep);
      for (const session of sessions.keys()) session.destroy();
    },
    get sessions() {
      return sessions.size;
    },
  };
}

// ⑤ Forward over HTTP/2: the terminal of routes with protocol h2c or h2, for any exchange
// (an HTTP/2 or gRPC stream, or an HTTP/1.1 request). Same contract as the HTTP/1.1 forwarder —
// identity headers after everything forgeable was stripped, bodies streamed with
// back-pressure, keygate's own headers on the answer, 100-continue only now — plus what
// HTTP/2 and gRPC carry:
//  - response trailers pass (grpc-status lives there), and a trailers-only answer (HEADERS
//    with END_STREAM) stays one;
//  - cancellation both ways: a client that resets cancels the upstream stream, an upstream
//    that resets mid-answer cuts the client's (never END_STREAM, which would look complete);
//  - gRPC deadline = min(grpc-timeout, route timeout), counted from the request head; the
//    upstream gets what remains as its grpc-timeout, and when it runs out the upstream is
//    cancelled and the caller gets DEADLINE_EXCEEDED. An upstream's own DEADLINE_EXCEEDED that
//    arrives once that deadline has passed (its timer can beat keygate's on a busy loop) is the
//    same event and gets the same answer, so the caller never sees which timer won;
//  - other requests keep the HTTP/1.1 forwarder's timeout: the route timeout for the answer's
//    head and between its chunks.
import { constants, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import { kgError, type KeygateError } from '../errors/keygate-error.js';
import { encodeGrpcMessage, formatGrpcTimeout, GRPC, parseGrpcTimeout } from '../transport/grpc.js';
import { H2_CONNECTION_HEADERS } from '../transport/http2.js';
import { appendOwnHeaders } from '../transport/own-headers.js';
import type { Routed } from '../vocabulary/context.js';
import type { Terminal, TerminalResult } from '../vocabulary/stage.js';
import { buildUpstreamHeaders, classifyUpstreamError, type ForwardOptions } from './forward-terminal.js';
import { GrpcMessageCursor } from './grpc-frames.js';
import { appendResponseHeaders } from './response-headers.js';
import type { H2Upstream } from './upstream-pools.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_REFUSED_STREAM } = constants;

/** An HTTP/2 client error, by its cause (a refused connection under ERR_HTTP2_STREAM_CANCEL) or its RST_STREAM. */
export function classifyH2Error(err: unknown, rstCode: number | undefined): { error: KeygateError; reason: string } {
  if (rstCode === NGHTTP2_REFUSED_STREAM) return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'refused' };
  const e = err as { code?: string; cause?: unknown } | undefined;
  if (e?.cause) return classifyUpstreamError(e.cause);
  if (e?.code === 'ERR_HTTP2_STREAM_ERROR' || e === undefined) return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'reset' };
  return classifyUpstreamError(err);
}

/** What the request says about trailers (`te: trailers`) and, for gRPC, its own deadline. */
function scanHop(raw: readonly string[]): { te: boolean; grpcTimeoutMs: number | undefined } {
  let te = false;
  let grpcTimeoutMs: number | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'te') te ||= /(?:^|,)\s*trailers\s*(?:[;,]|$)/i.test(raw[i + 1]!);
    else if (name === 'grpc-timeout') grpcTimeoutMs = parseGrpcTimeout(raw[i + 1]);
  }
  return { te, grpcTimeoutMs };
}

/**
 * Whether an upstream's grpc-status, read at `nowMs`, is keygate's own deadline running out:
 * DEADLINE_EXCEEDED once the deadline keygate forwarded (floored to a millisecond, so a little
 * slack) has passed. Earlier, it is the upstream's own reason, passed on as it is.
 */
export function isOwnDeadline(grpcStatus: unknown, nowMs: number, deadlineAtMs: number): boolean {
  return String(grpcStatus) === String(GRPC.DEADLINE_EXCEEDED) && nowMs >= deadlineAtMs - 2;
}

/** The upstream request's headers: pseudo-headers of its own, the stripped list, keygate's, no connection-specific field. */
function requestHeaders(ctx: Routed, identity: boolean, scheme: string, fallbackAuthority: string, te: boolean, grpcTimeout: string | undefined): OutgoingHttpHeaders {
  const flat = buildUpstreamHeaders(ctx, identity);
  const h: OutgoingHttpHeaders = { ':method': ctx.method, ':scheme': scheme, ':path': ctx.path + ctx.query };
  let authority: string | undefined;
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    // The client's Host or :authority travels on as :authority, as Host does on HTTP/1.1.
    if (name === 'host') {
      authority ??= flat[i + 1];
      continue;
    }
    if (H2_CONNECTION_HEADERS.has(name) || name === 'te' || name === 'grpc-timeout') continue;
    const prev = h[name];
    const value = flat[i + 1]!;
    if (prev === undefined) h[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else h[name] = [String(prev), value];
  }
  h[':authority'] = authority ?? fallbackAuthority;
  if (te) h['te'] = 'trailers';
  if (grpcTimeout !== undefined) h['grpc-timeout'] = grpcTimeout;
  return h;
}

export function h2ForwardTerminal(opts: ForwardOptions<H2Upstream>): Terminal<Routed> {
  const { upstream, timeoutMs, identity, usage } = opts;
  const scheme = upstream.protocol === 'h2' ? 'https' : 'http';
  const fallbackAuthority = new URL(upstream.origin).host;
  return {
    kind: 'forward',
    run: (ctx, done) => {
      const x = ctx.x;
      // Reset by the client while the stages ran (a rapid reset): no upstream work for it.
      if (x.aborted) {
        done({ ok: false, reason: 'client_closed' });
        return;
      }
      if (identity && ctx.principal && usage) usage.touch(ctx.principal.id, ctx.nowMs);
      const grpc = x.protocol === 'grpc';
      const hop = scanHop(x.rawHeaders);
      // gRPC: the deadline is counted from the request head; the upstream gets what remains
      // (floored to a millisecond), and its timer starts after ours.
      const deadlineAt = ctx.startedAt + Math.min(timeoutMs, hop.grpcTimeoutMs ?? Infinity);
      const remaining = grpc ? deadlineAt - performance.now() : 0;
      if (grpc) {
        if (remaining <= 0) {
          done({ ok: false, error: kgError('KG_ERR_UPSTREAM_TIMEOUT'), reason: 'timeout' });
          return;
        }
      }
      const upstreamGaveUp = (grpcStatus: unknown) => grpc && isOwnDeadline(grpcStatus, performance.now(), deadlineAt);
      const headers = requestHeaders(ctx, identity, scheme, fallbackAuthority, grpc || hop.te, grpc ? formatGrpcTimeout(remaining) : undefined);
      const hasBody = ctx.headers.hasBody;
      if (hasBody) x.sendContinue();
      let up: ClientHttp2Stream | undefined;
      try {
        up = upstream.sessions.request(headers, !hasBody);
      } catch (err) {
        done({ ok: false, ...classifyH2Error(err, undefined) });
        return;
      }
      if (!up) {
        done({ ok: false, error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'overloaded' });
        return;
      }
      const stream = up;
      let finished = false;
      let deadline: NodeJS.Timeout | undefined;
      const finish = (r: TerminalResult) => {
        if (finished) return;
        finished = true;
        clearTimeout(deadline);
        done(r);
      };
      // Not close(CANCEL) while the request body is still open: Node would first send
      // END_STREAM, and the upstream would take a cut request for a whole one.
      const cancelUpstream = () => {
        if (stream.destroyed) return;
        if (stream.writableEnded) stream.close(NGHTTP2_CANCEL);
        else stream.destroy(new Error('cancelled by keygate'));
      };
      // The first error says why the stream failed ('close' follows); kept for classifying.
      let failure: unknown;
      stream.on('error', (err) => (failure ??= err));

      if (hasBody) x.body.pipe(stream);
      x.onClose(() => {
        if (finished) return;
        cancelUpstream();
        finish({ ok: false, reason: 'client_closed' });
      });

      const cursor = grpc ? new GrpcMessageCursor() : undefined;
      let trailersOnly = false;
      let trailers: string[] | undefined;
      let trailerStatus: unknown;
      stream.on('response', (h, flags) => {
        if (finished || x.aborted) return;
        const status = Number(h[':status']);
        if (flags & NGHTTP2_FLAG_END_STREAM && upstreamGaveUp(h['grpc-status'])) {
          finish({ ok: false, error: kgError('KG_ERR_UPSTREAM_TIMEOUT'), reason: 'timeout' });
          return;
        }
        const out = appendOwnHeaders(appendResponseHeaders([], h, ctx.limit !== undefined && ctx.limit !== null), ctx);
        if (flags & NGHTTP2_FLAG_END_STREAM) {
          trailersOnly = true;
          x.respond(status, out, '');
          return;
        }
        x.writeHead(status, out, grpc || h['trailer'] !== undefined);
      });
      stream.on('data', (chunk: Buffer) => {
        if (finished) return;
        cursor?.feed(chunk);
        if (!x.write(chunk)) {
          stream.pause();
          x.onDrain(() => stream.resume());
        }
      });
      stream.on('trailers', (t) => {
        trailers = appendResponseHeaders([], t);
        trailerStatus = t['grpc-status'];
      });
      stream.on('end', () => {
        if (finished) return;
        if (!trailersOnly && upstreamGaveUp(trailerStatus)) {
          endTimedOut();
          return;
        }
        if (!trailersOnly) x.end(trailers);
        finish({ ok: true });
      });
      stream.on('close', () => {
        if (finished) return;
        if (x.aborted) {
          finish({ ok: false, reason: 'client_closed' });
          return;
        }
        // Closed without its end: reset or refused by the upstream, or the session failed.
        // Before the head the caller gets 502 (gRPC: UNAVAILABLE); after it, the pipeline cuts.
        finish({ ok: false, ...classifyH2Error(failure, stream.rstCode) });
      });

      // keygate's deadline ran out. Between two messages the call can still end properly:
      // grpc-status 4 in trailers; otherwise the pipeline answers (or cuts a started answer).
      function endTimedOut(): void {
        const err = kgError('KG_ERR_UPSTREAM_TIMEOUT');
        if (x.headersSent && !trailersOnly && cursor!.atBoundary) {
          x.end(['grpc-status', String(GRPC.DEADLINE_EXCEEDED), 'grpc-message', encodeGrpcMessage(err.detail), 'x-keygate-error', err.code]);
          finish({ ok: false, error: err, reason: 'timeout', inBand: true });
          return;
        }
        finish({ ok: false, error: err, reason: 'timeout' });
      }

      if (grpc) {
        deadline = setTimeout(() => {
          if (finished) return;
          cancelUpstream();
          endTimedOut();
        }, remaining);
      } else {
        stream.setTimeout(timeoutMs, () => {
          if (finished) return;
          cancelUpstream();
          finish({ ok: false, error: kgError('KG_ERR_UPSTREAM_TIMEOUT'), reason: 'timeout' });
        });
      }
    },
  };
}

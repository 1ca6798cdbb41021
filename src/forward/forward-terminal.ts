// ⑤ Forward: the terminal of a route's chain. To the route's upstream over its keep-alive pool,
// bodies streamed both ways with back-pressure, identity headers set after everything
// forgeable was stripped (request/scan-headers.ts did that), keygate's own headers on the way
// back. A client waiting on `Expect: 100-continue` is told to send its body only here, after
// every stage admitted the request. How a body may hold an upstream connection is body-gate.ts.
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { kgError, type KeygateError } from '../errors/keygate-error.js';
import type { UsageTracker } from '../store/usage-tracker.js';
import { appendOwnHeaders } from '../transport/own-headers.js';
import type { Routed } from '../vocabulary/context.js';
import type { Terminal, TerminalResult } from '../vocabulary/stage.js';
import { readWhole, releaseBuffer, reserveBuffer, slotsFor, type BodyPolicy } from './body-gate.js';
import { appendResponseHeaders } from './response-headers.js';

export type { BodyPolicy };
import type { Http1Upstream } from './upstream-pools.js';

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export function classifyUpstreamError(err: unknown): { error: KeygateError; reason: string } {
  const code = (err as { code?: string } | null)?.code ?? '';
  if (TIMEOUT_CODES.has(code)) return { error: kgError('KG_ERR_UPSTREAM_TIMEOUT'), reason: code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect_timeout' : 'timeout' };
  if (code === 'ECONNREFUSED') return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'refused' };
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'reset' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'unreachable' };
  return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'other' };
}

/** The request headers for the upstream: the stripped list, then keygate's. */
export function buildUpstreamHeaders(ctx: Routed, identity: boolean): string[] {
  const h = ctx.headers;
  const out = h.forward;
  out.push('x-request-id', ctx.requestId);
  out.push('x-forwarded-for', h.forwardedFor ? `${h.forwardedFor}, ${ctx.clientIp}` : ctx.clientIp);
  out.push('x-forwarded-proto', 'https');
  if (ctx.host) out.push('x-forwarded-host', ctx.host);
  const c = ctx.principal;
  if (identity && c && ctx.auth) {
    out.push('x-keygate-account', c.account.name, 'x-keygate-credential', c.id, 'x-keygate-auth', ctx.auth, 'x-keygate-scopes', c.grant.header);
    if (ctx.peer) out.push('x-forwarded-client-cert', ctx.peer.xfcc);
  }
  const auth = h.authorization;
  if (auth !== undefined && !authorizationIsCredential(ctx)) out.push('authorization', auth);
  return out;
}

/**
 * Authorization travels on to the upstream (e.g. its own Basic auth next to x-api-key) unless
 * it carried a keygate credential: a kg_ token in any form (Bearer, another scheme, bare)
 * never leaves keygate, nor a Bearer value that was the request's credential.
 */
function authorizationIsCredential(ctx: Routed): boolean {
  const token = ctx.headers.authToken;
  if (token === undefined) return false;
  return token.startsWith('kg_') || (ctx.mode === 'api-key' && ctx.headers.apiKey === undefined);
}

export interface ForwardOptions<U = Http1Upstream> {
  upstream: U;
  timeoutMs: number;
  /** Protected routes: identity headers on, last use recorded. Public routes: neither. */
  identity: boolean;
  usage?: UsageTracker;
  body: BodyPolicy;
}

export function forwardTerminal(opts: ForwardOptions): Terminal<Routed> {
  const { upstream, timeoutMs, identity, usage, body } = opts;
  const slots = slotsFor(upstream, body.streamingSlots);
  return {
    kind: 'forward',
    run: (ctx, done) => {
      const x = ctx.x;
      if (identity && ctx.principal && usage) usage.touch(ctx.principal.id, ctx.nowMs);
      let finished = false;
      const finish = (r: TerminalResult) => {
        if (finished) return;
        finished = true;
        done(r);
      };
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(controller) {
          if (x.aborted) {
            controller.abort(new Error('client closed'));
            return;
          }
          // Not `x.completed`: the exchange can also have been answered by keygate meanwhile
          // (an HTTP/2 stream's own timeout), and then the upstream request is just as moot.
          x.onClose(() => {
            if (!finished) {
              controller.abort(new Error('client closed'));
              finish({ ok: false, reason: 'client_closed' });
            }
          });
        },
        onResponseStart(_controller, statusCode, headers) {
          // One flat list and one writeHead: Node's fast path, no per-header setHeader.
          const out = appendResponseHeaders([], headers, ctx.limit !== undefined && ctx.limit !== null);
          x.writeHead(statusCode, appendOwnHeaders(out, ctx));
        },
        onResponseData(controller, chunk) {
          if (!x.write(chunk)) {
            controller.pause();
            x.onDrain(() => controller.resume());
          }
        },
        onResponseEnd() {
          x.end();
          finish({ ok: true });
        },
        onResponseError(_controller, err) {
          if (x.aborted) {
            finish({ ok: false, reason: 'client_closed' });
            return;
          }
          finish({ ok: false, ...classifyUpstreamError(err) });
        },
      };
      const dispatch = (requestBody: Dispatcher.DispatchOptions['body']) =>
        upstream.pool.dispatch(
          {
            origin: upstream.origin,
            method: ctx.method,
            path: ctx.path + ctx.query,
            headers: buildUpstreamHeaders(ctx, identity),
            body: requestBody,
            headersTimeout: timeoutMs,
            bodyTimeout: timeoutMs,
          },
          handler,
        );
      if (!ctx.headers.hasBody) return dispatch(null);
      const length = ctx.headers.contentLength;
      if (length !== undefined && length <= body.bufferBytes && reserveBuffer(length)) {
        x.sendContinue();
        readWhole(x.body, length, (data) => {
          releaseBuffer(length);
          if (data === undefined || x.aborted) return finish({ ok: false, reason: 'client_closed' });
          dispatch(data);
        });
        return;
      }
      const release = slots.acquire(() => {
        if (x.aborted) return finish({ ok: false, reason: 'client_closed' });
        x.sendContinue();
        // undici destroys the body stream it was given once it is sent. An HTTP/2 stream's body
        // is the same Duplex as its answer, so it gets a stream of its own to destroy.
        dispatch(x.protocol === 'http/1.1' ? x.body : x.body.pipe(new PassThrough()));
      });
      // Given back when the body is in (the upstream has it all) or the exchange is over.
      if (x.aborted) return release();
      x.onClose(release);
      x.body.once('end', release);
    },
  };
}

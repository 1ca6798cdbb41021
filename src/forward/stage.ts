// ⑤ Forward: to the route's upstream over its keep-alive pool, bodies streamed both ways with
// backpressure, identity headers set after everything forgeable was stripped.
import type { Dispatcher } from 'undici';
import { KeygateError, kgError } from '../errors/keygate-error.js';
import type { RequestContext } from '../pipeline/context.js';
import { appendRateLimitHeaders } from '../ratelimit/stage.js';
import { appendResponseHeaders } from './headers.js';

export type ForwardResult = { ok: true } | { ok: false; error: KeygateError; reason: string } | { ok: false; error?: undefined; reason: 'client_closed' };

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function classify(err: unknown): { error: KeygateError; reason: string } {
  const code = (err as { code?: string } | null)?.code ?? '';
  if (TIMEOUT_CODES.has(code)) return { error: kgError('KG_ERR_UPSTREAM_TIMEOUT'), reason: code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect_timeout' : 'timeout' };
  if (code === 'ECONNREFUSED') return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'refused' };
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'reset' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'unreachable' };
  return { error: kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), reason: 'other' };
}

export function buildUpstreamHeaders(ctx: RequestContext): string[] {
  const h = ctx.headers;
  const out = h.forward;
  out.push('x-request-id', ctx.requestId);
  out.push('x-forwarded-for', h.forwardedFor ? `${h.forwardedFor}, ${ctx.clientIp}` : ctx.clientIp);
  out.push('x-forwarded-proto', 'https');
  if (ctx.host) out.push('x-forwarded-host', ctx.host);
  const c = ctx.credential;
  if (c && !ctx.route!.public) {
    out.push('x-keygate-account', c.account.name, 'x-keygate-credential', c.id, 'x-keygate-auth', ctx.auth!, 'x-keygate-scopes', c.grant.header);
    if (ctx.peer) out.push('x-forwarded-client-cert', ctx.peer.xfcc);
  }
  const auth = h.authorization;
  if (auth !== undefined && !authorizationIsCredential(ctx, auth)) out.push('authorization', auth);
  return out;
}

/**
 * Authorization travels on to the upstream (e.g. its own Basic auth next to x-api-key) unless
 * it carried a keygate credential: a Bearer kg_ token never leaves keygate.
 */
function authorizationIsCredential(ctx: RequestContext, auth: string): boolean {
  if (!/^bearer[ \t]/i.test(auth)) return false;
  return /^bearer[ \t]+kg_/i.test(auth) || (ctx.mode === 'api-key' && ctx.headers.apiKey === undefined);
}

export function forward(ctx: RequestContext, done: (r: ForwardResult) => void): void {
  const { req, res } = ctx;
  const route = ctx.route!;
  let finished = false;
  const finish = (r: ForwardResult) => {
    if (finished) return;
    finished = true;
    done(r);
  };
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(controller) {
      if (res.destroyed) {
        controller.abort(new Error('client closed'));
        return;
      }
      // Called by the pipeline's one 'close' listener when the client leaves early.
      res.once('close', () => {
        if (!res.writableFinished) {
          controller.abort(new Error('client closed'));
          finish({ ok: false, reason: 'client_closed' });
        }
      });
    },
    onResponseStart(_controller, statusCode, headers) {
      // One flat list and one writeHead: Node's fast path, no per-header setHeader.
      const out = appendResponseHeaders([], headers, ctx.limit !== undefined);
      out.push('x-request-id', ctx.requestId);
      if (ctx.limit) appendRateLimitHeaders(out, ctx.limit);
      if (ctx.expiresHeader) out.push('keygate-credential-expires', ctx.expiresHeader);
      res.writeHead(statusCode, out);
    },
    onResponseData(controller, chunk) {
      if (!res.write(chunk)) {
        controller.pause();
        res.once('drain', () => controller.resume());
      }
    },
    onResponseEnd() {
      res.end();
      finish({ ok: true });
    },
    onResponseError(_controller, err) {
      if (res.destroyed || req.destroyed) {
        finish({ ok: false, reason: 'client_closed' });
        return;
      }
      finish({ ok: false, ...classify(err) });
    },
  };
  route.upstream.pool.dispatch(
    {
      origin: route.upstream.origin,
      method: ctx.method,
      path: ctx.path + ctx.query,
      headers: buildUpstreamHeaders(ctx),
      body: ctx.headers.hasBody ? req : null,
      headersTimeout: route.timeoutMs,
      bodyTimeout: route.timeoutMs,
    },
    handler,
  );
}

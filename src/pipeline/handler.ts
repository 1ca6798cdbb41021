// The request lifecycle: an exchange comes in, the front stages every request meets run, then
// the chain compiled for its route, then that chain's terminal. A stage lets the request go on
// or returns its refusal; this file is the only place that turns a refusal into an answer
// (through transport/problem.ts) and the only place that records the outcome — once, when the
// exchange closes — in the audit log and the metrics. Nothing thrown here may end the process
// or vanish: it is answered 500 KG_ERR_INTERNAL, logged with the request id, and counted.
import { randomUUID } from 'node:crypto';
import { KeygateError, kgError } from '../errors/keygate-error.js';
import type { AuditSink } from '../observe/audit.js';
import type { Logger } from '../observe/logger.js';
import type { KeygateMetrics, Outcome } from '../observe/metrics.js';
import { clientAddress } from '../transport/client-address.js';
import { appendOwnHeaders } from '../transport/own-headers.js';
import { sendProblem } from '../transport/problem.js';
import type { RequestContext } from '../vocabulary/context.js';
import type { Exchange } from '../vocabulary/exchange.js';
import { modeOfName, type HostMode } from '../vocabulary/host-mode.js';
import type { TerminalResult, Verdict } from '../vocabulary/stage.js';
import type { AnyStage } from './chain.js';
import type { CompiledPipeline } from './compile.js';

export interface HandlerDeps {
  /** The pipeline of the current config; a request keeps the one it started with. */
  pipeline: () => CompiledPipeline;
  metrics: KeygateMetrics;
  audit: AuditSink;
  logger: Logger;
  now?: () => number;
}

export interface RequestHandler {
  handle(x: Exchange, forcedMode?: HostMode): void;
  /** Requests being handled now (drain waits for 0). */
  inflight(): number;
}

const OUTCOME_BY_STATUS: Record<number, Outcome> = {
  400: 'bad_request', 405: 'bad_request', 408: 'bad_request', 413: 'bad_request', 417: 'bad_request', 431: 'bad_request',
  401: 'unauthenticated', 403: 'forbidden', 404: 'no_route', 421: 'misdirected', 429: 'rate_limited',
  500: 'internal_error', 502: 'upstream_error', 503: 'unavailable', 504: 'upstream_error',
};

/** Until the path is normalized, audit the raw path without its query string (the audit line bounds its length). */
function pathForAudit(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function headerNames(raw: readonly string[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < raw.length && names.length < 100; i += 2) names.push(raw[i]!.toLowerCase());
  return names;
}

/** How late a client over its budget of failed authentications gets its 429 (docs/security.md). */
export const FAILING_CLIENT_DELAY_MS = 1_000;

export function createRequestHandler(deps: HandlerDeps): RequestHandler {
  const { metrics, audit, logger } = deps;
  const now = deps.now ?? Date.now;
  let inflight = 0;
  metrics.inflightSource = () => inflight;

  function internalError(ctx: RequestContext, err: unknown, where: string): void {
    logger.error({ err: (err as Error)?.message, stack: (err as Error)?.stack, requestId: ctx.requestId, where }, 'request failed inside keygate');
    metrics.internalErrors.labels('request').inc();
    if (ctx.answered?.code === 'KG_ERR_INTERNAL') {
      ctx.x.destroy(); // failing again while answering the failure: cut the exchange
      return;
    }
    answer(ctx, kgError('KG_ERR_INTERNAL'));
  }

  function answer(ctx: RequestContext, err: KeygateError): void {
    // keygate answered already (the transport refused the request while a stage was still
    // deciding): that first answer is the one on the wire and in the record.
    if (ctx.answered && ctx.x.headersSent) {
      ctx.x.destroy();
      return;
    }
    ctx.reason = err.code;
    ctx.answered = err;
    // A client over its budget of failed authentications (the per-address 429) gets its answer
    // a second late: a spray of guesses pipelined on keep-alive connections then runs at the
    // pace keygate sets, not at the pace keygate can answer. One that holds too many is cut.
    if (err.code === 'KG_ERR_AUTH_RATE_LIMITED' && ctx.x.holdAnswer && !ctx.x.holdAnswer(FAILING_CLIENT_DELAY_MS)) {
      ctx.x.destroy();
      return;
    }
    try {
      sendProblem(ctx.x, err, ctx.requestId, appendOwnHeaders([], ctx));
    } catch (e) {
      internalError(ctx, e, 'answer');
    }
  }

  function terminalDone(ctx: RequestContext, r: TerminalResult): void {
    // A client that left needs no answer; one keygate refused already is not the upstream's failure.
    if (r.ok || !r.error || ctx.answered) return;
    metrics.upstreamErrors.labels(r.reason).inc();
    if (r.inBand) ctx.answered = r.error; // the terminal told the client itself (gRPC trailers)
    else answer(ctx, r.error);
    ctx.reason = `${r.error.code} (${r.reason})`;
  }

  /** The transport's own timer ran out (HTTP/2 stream idle, slow body): 408 while nothing was sent, else a cut. */
  function expired(ctx: RequestContext, detail: string): void {
    if (ctx.answered) return;
    const err = new KeygateError('KG_ERR_REQUEST_TIMEOUT', detail);
    if (ctx.x.headersSent) {
      ctx.answered = err;
      ctx.reason = err.code;
      ctx.x.destroy();
    } else answer(ctx, err);
  }

  /** Runs `stages` from `i`; after the front stages, the chain of the route they picked. */
  function advance(ctx: RequestContext, p: CompiledPipeline, stages: readonly AnyStage[], i: number, front: boolean): void {
    for (;;) {
      for (; i < stages.length; i++) {
        let v: Verdict | Promise<Verdict>;
        try {
          v = stages[i]!.run(ctx);
        } catch (err) {
          internalError(ctx, err, stages[i]!.name);
          return;
        }
        if (v === undefined) continue;
        if (v instanceof KeygateError) {
          answer(ctx, v);
          return;
        }
        const next = i + 1;
        v.then(
          // Answered meanwhile (a transport timeout): the rest of the chain is moot.
          (r) => (ctx.answered ? undefined : r ? answer(ctx, r) : advance(ctx, p, stages, next, front)),
          (err: unknown) => internalError(ctx, err, stages[i]!.name),
        );
        return;
      }
      if (!front) break;
      front = false;
      stages = p.chains[ctx.route!.index]!.stages;
      i = 0;
    }
    try {
      const chain = p.chains[ctx.route!.index]!;
      (ctx.x.protocol === 'websocket' ? chain.upgrade : chain.terminal).run(ctx, (r: TerminalResult) => terminalDone(ctx, r));
    } catch (err) {
      internalError(ctx, err, 'terminal');
    }
  }

  // Runs once per request, when the exchange closes (whether the answer finished or the client
  // went away), so audit and metrics never count twice.
  function complete(ctx: RequestContext): void {
    inflight--;
    try {
      const x = ctx.x;
      const status = x.headersSent || x.completed ? x.statusCode : 499;
      const c = ctx.principal;
      const err = ctx.answered;
      const clientLeft = !err && !x.completed;
      const outcome: Outcome = err ? (OUTCOME_BY_STATUS[err.status] ?? 'upstream_error') : clientLeft ? 'client_closed' : ctx.route?.public ? 'public' : 'allowed';
      const seconds = (performance.now() - ctx.startedAt) / 1000;
      if (ctx.authFailure) metrics.authFailures.labels(ctx.authFailure.reason).inc();
      if (err?.code === 'KG_ERR_RATE_LIMITED') metrics.rateLimited.labels(c?.account.name ?? '').inc();
      else if (err?.code === 'KG_ERR_AUTH_RATE_LIMITED') metrics.rateLimited.labels('').inc();
      if (ctx.shadowDenied && c) metrics.shadowDenials.labels(c.account.name).inc();
      metrics.observeRequest(c?.account.name ?? '', ctx.auth ?? '', outcome, seconds, x.protocol);
      const t = ctx.tunnel;
      audit.request({
        requestId: ctx.requestId,
        account: c?.account.name ?? null,
        credential: c?.id ?? null,
        auth: ctx.auth ?? null,
        method: ctx.method,
        protocol: x.protocol,
        host: ctx.host,
        path: ctx.path,
        status,
        decision: !err ? 'allow' : err.status >= 500 ? 'error' : 'deny',
        reason: clientLeft ? (ctx.reason ? `${ctx.reason}; client closed` : 'client closed') : ctx.reason || 'forwarded',
        durationMs: Math.round(seconds * 1e6) / 1e3,
        clientIp: ctx.clientIp,
        route: ctx.route?.index,
        warning: ctx.warning,
        bytesFromClient: t?.bytesFromClient,
        bytesFromUpstream: t?.bytesFromUpstream,
        closedBy: t?.closedBy,
      });
      // Debug aid for "why was this refused": what arrived, by header *name* only. Values are
      // never logged: they hold credentials.
      if (logger.isLevelEnabled('debug')) {
        logger.debug({ requestId: ctx.requestId, mode: ctx.mode, sni: x.tls?.servername || null, headerNames: headerNames(x.rawHeaders), status, reason: ctx.reason }, 'request handled');
      }
    } catch (err) {
      logger.error({ err: (err as Error)?.message, stack: (err as Error)?.stack, requestId: ctx.requestId }, 'recording a finished request failed');
      metrics.internalErrors.labels('audit').inc();
    }
  }

  function handle(x: Exchange, forcedMode?: HostMode): void {
    const p = deps.pipeline();
    const sni = x.tls?.servername;
    const headers = p.scan(x.rawHeaders);
    // HTTP/2 knows from END_STREAM; its requests (gRPC's above all) need no content-length.
    if (x.hasBody !== undefined) headers.hasBody = x.hasBody;
    const ctx: RequestContext = {
      x,
      startedAt: performance.now(),
      nowMs: now(),
      requestId: headers.requestId ?? randomUUID(),
      clientIp: clientAddress(x.tls?.remoteAddress),
      mode: forcedMode ?? (typeof sni === 'string' && sni ? modeOfName(sni, p.clientAuthPrefix) : 'api-key'),
      host: headers.host ?? '',
      method: x.method,
      headers,
      reference: undefined,
      path: pathForAudit(x.target),
      query: '',
      reason: '',
      route: undefined,
      auth: undefined,
      principal: undefined,
      peer: undefined,
      limit: undefined,
      authFailure: undefined,
      rule: undefined,
      shadowDenied: undefined,
      expiresHeader: undefined,
      warning: undefined,
      answered: undefined,
      tunnel: undefined,
    };
    inflight++;
    x.onClose(() => complete(ctx));
    x.onExpire?.((detail) => expired(ctx, detail));
    x.onRefused?.((err) => answer(ctx, err));
    advance(ctx, p, forcedMode ? p.frontForcedMode : p.front, 0, true);
  }

  return { handle, inflight: () => inflight };
}

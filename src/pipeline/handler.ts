// The request lifecycle: an ordered list of stages, each of which lets the request continue or
// answers it with a KeygateError; forward is always last. Only this file turns a decision
// into a response (via the problem writer) and only this file records the outcome (audit,
// metrics), once, when the response closes.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { authorize } from '../authorize/stage.js';
import { normalizeTarget } from '../authorize/normalize-path.js';
import { KeygateError, kgError } from '../errors/keygate-error.js';
import { writeProblem } from '../errors/problem.js';
import { scanRequestHeaders } from '../forward/headers.js';
import { matchRoute } from '../forward/routes.js';
import { forward, type ForwardResult } from '../forward/stage.js';
import { identify } from '../identify/stage.js';
import { clientAddress } from '../listener/client-address.js';
import { hostName, modeOfName } from '../listener/host-mode.js';
import type { AuditSink } from '../observe/audit.js';
import type { Logger } from '../observe/logger.js';
import type { KeygateMetrics, Outcome } from '../observe/metrics.js';
import type { RateLimiter } from '../ratelimit/limiter.js';
import { appendRateLimitHeaders, limitStage } from '../ratelimit/stage.js';
import type { UsageTracker } from '../store/usage-tracker.js';
import type { HostMode, RequestContext } from './context.js';
import type { Runtime } from './runtime.js';

type StageResult = KeygateError | undefined;
export type Stage = (ctx: RequestContext) => StageResult | Promise<StageResult>;

export interface PipelineState {
  runtime: Runtime;
  draining: boolean;
  /** Requests being handled now (drain waits for 0). */
  inflight: number;
}

export interface PipelineDeps {
  state: PipelineState;
  metrics: KeygateMetrics;
  audit: AuditSink;
  limiter: RateLimiter;
  /** Per client IP, for failed authentications. */
  failureLimiter: RateLimiter;
  usage: UsageTracker;
  logger: Logger;
  now?: () => number;
}

const DAY_MS = 86_400_000;
const OUTCOME_BY_STATUS: Record<number, Outcome> = { 400: 'bad_request', 401: 'unauthenticated', 403: 'forbidden', 404: 'no_route', 421: 'misdirected', 429: 'rate_limited', 500: 'internal_error', 502: 'upstream_error', 503: 'unavailable', 504: 'upstream_error' };

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, forcedMode?: HostMode) => void;

export function createRequestHandler(deps: PipelineDeps): RequestHandler {
  const { state, metrics, audit, usage } = deps;
  const now = deps.now ?? Date.now;
  metrics.inflightSource = () => state.inflight;
  const warnedDay = new Map<string, number>();

  const gate: Stage = () => {
    if (state.draining) return new KeygateError('KG_ERR_SHUTTING_DOWN', undefined, { 'retry-after': '5', connection: 'close' });
    return undefined;
  };

  const target: Stage = (ctx) => {
    const t = normalizeTarget(ctx.req.url ?? '');
    if (!t.ok) return new KeygateError('KG_ERR_PATH_INVALID', `The request path is refused: ${t.why}.`);
    ctx.path = t.path;
    ctx.query = t.query;
    ctx.route = matchRoute(ctx.rt.routes, t.path);
    if (!ctx.route) return kgError('KG_ERR_NO_ROUTE');
    if (ctx.rt.config.maintenance && !ctx.route.public) return new KeygateError('KG_ERR_MAINTENANCE', undefined, { 'retry-after': '120' });
    return undefined;
  };

  const identifyStage: Stage = (ctx) => {
    if (ctx.route!.public) return undefined;
    const err = identify(ctx);
    if (!err) return undefined;
    metrics.authFailures.labels(err.reason).inc();
    // Failed authentications are limited per client IP: past the budget the answer is 429, so
    // guessing tokens costs time. A request with a valid credential is never held back.
    const r = deps.failureLimiter.take(ctx.clientIp, ctx.rt.authFailurePolicy, ctx.nowMs);
    const limited = (res: { allowed: boolean; retryAfterSec: number }) =>
      res.allowed ? withChallenge(ctx, err) : new KeygateError('KG_ERR_AUTH_RATE_LIMITED', undefined, { 'retry-after': String(res.retryAfterSec) });
    return r instanceof Promise ? r.then(limited) : limited(r);
  };

  const authorizeStage: Stage = (ctx) => {
    if (ctx.route!.public) return undefined;
    const err = authorize(ctx);
    if (ctx.shadowDenied) metrics.shadowDenials.labels(ctx.credential!.account.name).inc();
    return err;
  };

  const warnStage: Stage = (ctx) => {
    const c = ctx.credential;
    if (!c || c.warnFromMs === null || ctx.nowMs < c.warnFromMs) return undefined;
    ctx.expiresHeader = c.endsHeader!;
    const day = Math.floor(ctx.nowMs / DAY_MS);
    if (warnedDay.get(c.id) !== day) {
      if (warnedDay.size > 100_000) warnedDay.clear();
      warnedDay.set(c.id, day);
      ctx.warning = `credential ends ${c.endsHeader}`;
    }
    return undefined;
  };

  const limit = limitStage(deps.limiter);
  const limitStageIfAuthenticated: Stage = (ctx) => (ctx.route!.public ? undefined : limit(ctx));

  // Limit before authorize: every answer to an authenticated request, a 403 included, carries
  // RateLimit-* and the early-warning header (SPEC §5), and probing for paths costs budget.
  const stages: Stage[] = [gate, target, identifyStage, warnStage, limitStageIfAuthenticated, authorizeStage];

  function answer(ctx: RequestContext, err: KeygateError): void {
    ctx.reason = err.code;
    ctx.answered = err;
    if (err.status === 429 && err.code === 'KG_ERR_RATE_LIMITED') metrics.rateLimited.labels(ctx.credential?.account.name ?? '').inc();
    if (err.code === 'KG_ERR_AUTH_RATE_LIMITED') metrics.rateLimited.labels('').inc();
    writeProblem(ctx.res, err, ctx.requestId, ownHeaders(ctx));
  }

  function proceed(ctx: RequestContext): void {
    if (ctx.credential && !ctx.route!.public) usage.touch(ctx.credential.id, ctx.nowMs);
    if (ctx.route!.public) ctx.reason = 'public route';
    forward(ctx, (r: ForwardResult) => {
      if (r.ok || !r.error) return; // a client that left needs no answer
      metrics.upstreamErrors.labels(r.reason).inc();
      ctx.reason = `${r.error.code} (${r.reason})`;
      ctx.answered = r.error;
      writeProblem(ctx.res, r.error, ctx.requestId, ownHeaders(ctx));
    });
  }

  function run(ctx: RequestContext, from: number): void {
    for (let i = from; i < stages.length; i++) {
      let r: StageResult | Promise<StageResult>;
      try {
        r = stages[i]!(ctx);
      } catch (err) {
        internalError(ctx, err);
        return;
      }
      if (r instanceof Promise) {
        r.then(
          (res) => (res ? answer(ctx, res) : run(ctx, i + 1)),
          (err: unknown) => internalError(ctx, err),
        );
        return;
      }
      if (r) {
        answer(ctx, r);
        return;
      }
    }
    proceed(ctx);
  }

  function internalError(ctx: RequestContext, err: unknown): void {
    deps.logger.error({ err, requestId: ctx.requestId }, 'request stage failed');
    answer(ctx, kgError('KG_ERR_INTERNAL'));
  }

  // Runs once per request, on the response's 'close' (which Node emits exactly once, whether
  // the answer finished or the client went away), so audit and metrics never count twice.
  function complete(ctx: RequestContext): void {
    state.inflight--;
    const res = ctx.res;
    const status = res.headersSent || res.writableFinished ? res.statusCode : 499;
    const c = ctx.credential;
    const err = ctx.answered;
    const clientLeft = !err && !res.writableFinished;
    const outcome: Outcome = err ? (OUTCOME_BY_STATUS[err.status] ?? 'upstream_error') : clientLeft ? 'client_closed' : ctx.route?.public ? 'public' : 'allowed';
    const seconds = (performance.now() - ctx.startedAt) / 1000;
    metrics.observeRequest(c?.account.name ?? '', ctx.auth ?? '', outcome, seconds);
    audit.request({
      requestId: ctx.requestId,
      account: c?.account.name ?? null,
      credential: c?.id ?? null,
      auth: ctx.auth ?? null,
      method: ctx.method,
      host: ctx.host,
      path: ctx.path,
      status,
      decision: !err ? 'allow' : err.status >= 500 ? 'error' : 'deny',
      reason: clientLeft ? (ctx.reason ? `${ctx.reason}; client closed` : 'client closed') : ctx.reason || 'forwarded',
      durationMs: Math.round(seconds * 1e6) / 1e3,
      clientIp: ctx.clientIp,
      route: ctx.route?.index,
      warning: ctx.warning,
    });
    // Debug aid for "why was this refused": what arrived, by header *name* only. Values are
    // never logged: they hold credentials.
    if (deps.logger.isLevelEnabled('debug')) {
      deps.logger.debug({ requestId: ctx.requestId, mode: ctx.mode, sni: (ctx.req.socket as TLSSocket).servername || null, headerNames: headerNames(ctx.req.rawHeaders), status, reason: ctx.reason }, 'request handled');
    }
  }

  return function handle(req, res, forcedMode) {
    const rt = state.runtime;
    const socket = req.socket as TLSSocket;
    const sni = socket.servername;
    const mode: HostMode = forcedMode ?? (typeof sni === 'string' && sni ? modeOfName(sni, rt.clientAuthPrefix) : 'api-key');
    const headers = scanRequestHeaders(req.rawHeaders);
    const requestId = headers.requestId ?? randomUUID();
    const host = req.headers.host ?? '';
    const ctx: RequestContext = {
      req,
      res,
      rt,
      startedAt: performance.now(),
      nowMs: now(),
      requestId,
      clientIp: clientAddress(socket.remoteAddress),
      mode,
      host,
      method: req.method ?? 'GET',
      headers,
      path: pathForAudit(req.url),
      query: '',
      reason: '',
    };
    state.inflight++;
    res.once('close', () => complete(ctx));
    // 421 before anything else: the Host must name a host of the connection's own mode. The
    // dedicated client-certificate port has no SNI to compare with.
    if (!forcedMode && host && modeOfName(hostName(host), rt.clientAuthPrefix) !== mode) {
      answer(ctx, kgError('KG_ERR_MISDIRECTED'));
      return;
    }
    run(ctx, 0);
  };
}

/** The headers keygate adds to an answer of its own besides x-request-id (set by writeProblem). */
function ownHeaders(ctx: RequestContext): Record<string, string> | undefined {
  if (!ctx.limit && !ctx.expiresHeader) return undefined;
  const list: string[] = [];
  if (ctx.limit) appendRateLimitHeaders(list, ctx.limit);
  if (ctx.expiresHeader) list.push('keygate-credential-expires', ctx.expiresHeader);
  const out: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

function headerNames(raw: readonly string[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < raw.length && names.length < 100; i += 2) names.push(raw[i]!.toLowerCase());
  return names;
}

/** Until the path is normalized, audit the raw path without its query string. */
function pathForAudit(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  const p = q === -1 ? url : url.slice(0, q);
  return p.length > 512 ? p.slice(0, 512) + '…' : p;
}

function withChallenge(ctx: RequestContext, err: KeygateError): KeygateError {
  const scheme = ctx.mode === 'clientauth' ? 'ClientCertificate realm="keygate"' : err.code === 'KG_ERR_CREDENTIAL_MISSING' ? 'Bearer realm="keygate"' : 'Bearer realm="keygate", error="invalid_token"';
  return new KeygateError(err.code, err.detail, { ...err.headers, 'www-authenticate': scheme });
}

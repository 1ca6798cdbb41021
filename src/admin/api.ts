// The admin API: HTTP+JSON under /admin/v1 on the admin listener, for everything the
// management commands do (accounts, tokens, certificate bindings, explain). Mounted only on
// the admin listener (admin/server.ts); the public listener has no route to it.
//
// Every call is authenticated (admin/auth.ts: a credential whose scopes include
// keygate:admin), every body is bounded and validated (admin/bodies.ts), every change goes
// through the lifecycle operations the CLI uses (admin/routes.ts). Every call leaves exactly
// one audit line: the lifecycle event (token.revoked, account.created, cert.bound, …) for a
// change, admin.read for a read, admin.denied for a refused caller and admin.failed for a
// refused request. A new token's secret appears in the response body of the call that created
// it and nowhere else. Nothing thrown here ends the process: the mapping in errors/mapping.ts
// answers it, and what was not foreseen is logged and counted.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { KeygateError } from '../errors/keygate-error.js';
import { KeygateFault } from '../errors/fault.js';
import { answerFor } from '../errors/mapping.js';
import { MemoryRateLimiter } from '../ratelimit/limiter.js';
import { isSaneRequestId } from '../request/scan-headers.js';
import { clientAddress } from '../transport/client-address.js';
import { writeProblem } from '../transport/problem.js';
import { authenticateAdmin, type AdminIdentity } from './auth.js';
import { bad, readBody } from './bodies.js';
import type { AdminApiContext } from './context.js';
import { ADMIN_API_PREFIX, allowQuery, match, type Reply } from './routes.js';
import type { AdminApiHandler } from './server.js';

export { ADMIN_API_PREFIX };
export { MAX_BODY_BYTES } from './bodies.js';
export { adminRouteTable } from './routes.js';

function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string, location?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-request-id': requestId,
    ...(location ? { location } : {}),
  });
  res.end(text);
}

export function mountAdminApi(ctx: AdminApiContext): AdminApiHandler {
  // Failed authentications are limited per client IP, as on the public listener.
  const failures = new MemoryRateLimiter(10_000);

  const failed = (err: unknown, requestId: string): KeygateError => {
    const { error, unexpected } = answerFor(err);
    if (unexpected) {
      ctx.logger.error({ err: (err as Error)?.message, stack: (err as Error)?.stack, requestId }, 'admin API call failed');
      ctx.metrics.internalErrors.labels('admin').inc();
    }
    return error;
  };

  return (req, res) => {
    const rawId = req.headers['x-request-id'];
    const requestId = typeof rawId === 'string' && isSaneRequestId(rawId) ? rawId : randomUUID();
    const clientIp = clientAddress(req.socket.remoteAddress);
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0]!;
    const nowMs = ctx.now();
    const base = { requestId, method, path: path.length > 512 ? path.slice(0, 512) + '…' : path, clientIp };

    const refuse = (error: KeygateError, event: string, identity?: AdminIdentity) => {
      ctx.audit.event({ event, actor: identity ? `admin:${identity.account}` : 'anonymous', ...(identity ? { credential: identity.credential, auth: identity.auth } : {}), ...base, status: error.status, reason: error.code, detail: error.detail });
      writeProblem(res, error, requestId);
    };

    const auth = authenticateAdmin(req, ctx.index(), ctx.config().environment, nowMs);
    if (!auth.ok) {
      if (auth.error.status === 401) {
        const r = failures.take(clientIp, ctx.authFailurePolicy(), nowMs);
        if (!r.allowed) return refuse(new KeygateError('KG_ERR_AUTH_RATE_LIMITED', undefined, { 'retry-after': String(r.retryAfterSec) }), 'admin.denied', auth.identity);
      }
      return refuse(auth.error, 'admin.denied', auth.identity);
    }
    const identity = auth.identity;
    const actor = `admin:${identity.account}`;
    const who = { actor, credential: identity.credential, auth: identity.auth, replica: ctx.replica };

    const call = async (): Promise<Reply> => {
      if (!path.startsWith(ADMIN_API_PREFIX)) throw new KeygateFault('KG_ERR_NOT_FOUND', `No admin resource at ${base.path}; the admin API lives under ${ADMIN_API_PREFIX}.`);
      let segments: string[];
      try {
        segments = path.slice(ADMIN_API_PREFIX.length).split('/').map(decodeURIComponent);
      } catch {
        throw bad('invalid percent-encoding in the path');
      }
      if (segments.at(-1) === '') segments.pop(); // a trailing slash names the same resource
      const found = match(segments);
      if (!found) throw new KeygateFault('KG_ERR_NOT_FOUND', `No admin resource at ${base.path}.`);
      const handler = found.route.methods[method];
      const allow = Object.keys(found.route.methods).join(', ');
      if (!handler) throw new KeygateFault('KG_ERR_METHOD_NOT_ALLOWED', `${method} is not supported here; use ${allow}.`, { allow });
      const query = new URL(url, 'http://admin.invalid').searchParams;
      allowQuery(query, found.route.query?.[method] ?? []);
      try {
        return await handler({ params: found.params, query, body: () => readBody(req), identity, ctx, op: () => ({ config: ctx.config(), now: new Date(nowMs) }), nowMs });
      } catch (err) {
        // A store this instance cannot write makes the resource read-only here: 405 with the
        // methods that still work (none, for an action such as revoke: an empty Allow).
        if (err instanceof KeygateFault && err.code === 'KG_ERR_STORE_READ_ONLY') throw new KeygateFault(err.code, err.message, { allow: Object.keys(found.route.methods).filter((m) => m === 'GET').join(', ') });
        throw err;
      }
    };

    call().then(
      (reply) => {
        if (reply.event) {
          const { event, target, ...fields } = reply.event;
          ctx.audit.event({ event, ...who, target, ...fields, ...base, status: reply.status });
        } else {
          ctx.audit.event({ event: 'admin.read', ...who, target: base.path, ...base, status: reply.status });
        }
        sendJson(res, reply.status, reply.body, requestId, reply.location);
      },
      (err: unknown) => {
        const error = failed(err, requestId);
        ctx.audit.event({ event: 'admin.failed', ...who, target: base.path, ...base, status: error.status, reason: error.code, detail: error.detail });
        writeProblem(res, error, requestId);
      },
    ).catch((err: unknown) => {
      // Writing the answer itself failed (the client left mid-answer): count it, cut the exchange.
      failed(err, requestId);
      res.destroy();
    });
  };
}

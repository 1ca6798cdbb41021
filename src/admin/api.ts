// The admin API: HTTP+JSON under /admin/v1 on the admin listener, for everything the
// management commands do (accounts, tokens, certificate bindings, explain). Mounted only on
// the admin listener (admin/server.ts); the public listener has no route to it.
//
// Every call is authenticated (admin/auth.ts: a credential whose scopes include
// keygate:admin), every body is bounded and validated with a strict schema, every change goes
// through the lifecycle operations the CLI uses, inside CredentialStore.update (lock, atomic
// write), so the proxy's watcher applies it within a second. Every call leaves exactly one
// audit line: the lifecycle event (token.revoked, account.created, cert.bound, …) for a change,
// admin.read for a read, admin.denied for a refused caller and admin.failed for a refused
// request. A new token's secret appears in the response body of the call that created it and
// nowhere else.
import { randomUUID, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { SourceError } from '../config/source.js';
import { parseDuration } from '../config/units.js';
import { KeygateError } from '../errors/keygate-error.js';
import type { ErrorCode } from '../errors/catalog.js';
import { writeProblem } from '../errors/problem.js';
import { isSaneRequestId } from '../forward/headers.js';
import { clientAddress } from '../listener/client-address.js';
import type { AdminApiContext } from '../instance.js';
import { MemoryRateLimiter } from '../ratelimit/limiter.js';
import { LockTimeoutError } from '../store/atomic-file.js';
import { bindCertificate, certificateFacts, unbindCertificate } from '../store/cert-operations.js';
import {
  accountDetail,
  accountView,
  bindingView,
  createAccount,
  createToken,
  deleteAccount,
  deleteToken,
  findAccount,
  findToken,
  listTokens,
  OperationError,
  parseOptionalExpiry,
  parseTokenFilter,
  restoreToken,
  revokeToken,
  rotateToken,
  tokenView,
  updateAccount,
  type AccountPatch,
  type OpContext,
} from '../store/operations.js';
import type { CertMatch, StoreData } from '../store/types.js';
import { authenticateAdmin, type AdminIdentity } from './auth.js';
import { explainRequest, ExplainInputError } from './explain.js';
import type { AdminApiHandler } from './server.js';

export const ADMIN_API_PREFIX = '/admin/v1/';
/** Largest request body the admin API reads; every valid body is far smaller. */
export const MAX_BODY_BYTES = 64 * 1024;

/** A refusal of the request itself, answered as problem+json. */
class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

const bad = (message: string) => new ApiError('KG_ERR_BAD_REQUEST', message);

// ---- request bodies --------------------------------------------------------------------------

const text = (max: number) => z.string().max(max);
const nameList = z.array(z.string().min(1).max(128)).max(256);
const accountFields = {
  description: text(1024).optional(),
  owner: text(254).optional(),
  endDate: z.string().max(32).nullable().optional(),
  roles: nameList.optional(),
  scopes: nameList.optional(),
  policy: z.string().max(128).nullable().optional(),
};
const accountCreateBody = z.strictObject({ name: z.string().max(64), ...accountFields });
const accountPatchBody = z.strictObject(accountFields).refine((p) => Object.values(p).some((v) => v !== undefined), 'give at least one field to change');
const tokenCreateBody = z.strictObject({
  account: z.string().max(64),
  label: text(128).optional(),
  scopes: nameList.nullable().optional(),
  /** A duration (30d), a day (2027-01-31, ends 23:59:59 UTC) or a date-time; null = never. */
  expires: z.string().max(64).nullable().optional(),
  policy: z.string().max(128).nullable().optional(),
});
const revokeBody = z.strictObject({ reason: text(512).optional() });
const emptyBody = z.strictObject({});
const rotateBody = z.strictObject({ overlap: z.string().max(32).optional(), expires: z.string().max(64).nullable().optional() });
const bindBody = z
  .strictObject({
    account: z.string().max(64),
    match: z.enum(['fingerprint', 'cn', 'dns', 'uri']).optional(),
    value: z.string().max(1024).optional(),
    /** A PEM certificate: bound by its SHA-256 fingerprint, its notAfter kept. */
    certificate: z.string().max(32_768).optional(),
    nickname: text(128).optional(),
    endDate: z.string().max(64).nullable().optional(),
    scopes: nameList.nullable().optional(),
    policy: z.string().max(128).nullable().optional(),
  })
  .refine((b) => (b.certificate !== undefined ? b.match === undefined && b.value === undefined : b.match !== undefined && b.value !== undefined), {
    message: 'give either "certificate" (PEM) or both "match" and "value"',
  });

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 10).map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`);
  throw bad(`invalid request body: ${issues.join('; ')}`);
}

// ---- routing ---------------------------------------------------------------------------------

interface Call {
  params: Record<string, string>;
  query: URLSearchParams;
  body: () => Promise<unknown>;
  identity: AdminIdentity;
  ctx: AdminApiContext;
  op: () => OpContext;
  nowMs: number;
}

interface Reply {
  status: number;
  body: unknown;
  location?: string;
  /** The audit line of a change; reads are audited as admin.read. */
  event?: { event: string; target: string; [field: string]: unknown };
}

type Handler = (call: Call) => Promise<Reply>;

interface Route {
  segments: string[];
  methods: Partial<Record<string, Handler>>;
  /** Query parameters each method accepts; anything else is a typo worth a 400. */
  query?: Partial<Record<string, string[]>>;
}

const ok = (body: unknown, event?: Reply['event']): Reply => ({ status: 200, body, event });

function allowQuery(query: URLSearchParams, allowed: readonly string[]): void {
  for (const k of query.keys()) if (!allowed.includes(k)) throw bad(`unknown query parameter "${k}"${allowed.length ? ` (accepted: ${allowed.join(', ')})` : ''}`);
  for (const k of allowed) if (query.getAll(k).length > 1) throw bad(`query parameter "${k}" given more than once`);
}

const param = (q: URLSearchParams, k: string): string | undefined => q.get(k) ?? undefined;

function parseForce(q: URLSearchParams): boolean {
  const v = q.get('force');
  if (v === null || v === 'false') return false;
  if (v === 'true') return true;
  throw bad('force is true or false');
}

async function mutate<T>(call: Call, fn: (data: StoreData) => T): Promise<T> {
  return call.ctx.store.update(fn);
}

const expiry = (text: string | null | undefined, nowMs: number): string | null => parseOptionalExpiry(text, new Date(nowMs));

function certificateFromPem(pem: string): { fingerprint: string; serial: string; notAfter: string } {
  let x: X509Certificate;
  try {
    x = new X509Certificate(pem);
  } catch {
    throw bad('certificate is not a PEM X.509 certificate');
  }
  return certificateFacts(x);
}

const routes: Route[] = [
  {
    segments: ['accounts'],
    methods: {
      GET: async ({ ctx, nowMs }) => {
        const data = await ctx.store.read();
        return ok({ accounts: data.accounts.map((a) => accountView(a, data, nowMs)) });
      },
      POST: async (call) => {
        const b = parseBody(accountCreateBody, await call.body());
        const a = await mutate(call, (data) => createAccount(data, { name: b.name, description: b.description, owner: b.owner, endDate: b.endDate ?? null, roles: b.roles, scopes: b.scopes, policy: b.policy ?? null }, call.op()));
        return {
          status: 201,
          body: a,
          location: `${ADMIN_API_PREFIX}accounts/${encodeURIComponent(a.name)}`,
          event: { event: 'account.created', target: a.name, owner: a.owner, roles: a.roles, scopes: a.scopes, policy: a.policy, endDate: a.endDate },
        };
      },
    },
  },
  {
    segments: ['accounts', ':name'],
    query: { DELETE: ['force'] },
    methods: {
      GET: async ({ ctx, params, nowMs }) => {
        const [data, used] = await Promise.all([ctx.store.read(), ctx.store.readUsage()]);
        return ok(accountDetail(findAccount(data, params.name!), data, used, ctx.runtime().config, nowMs));
      },
      PATCH: async (call) => {
        const b = parseBody(accountPatchBody, await call.body());
        const patch: AccountPatch = b;
        const a = await mutate(call, (data) => updateAccount(data, call.params.name!, patch, call.op()));
        return ok(a, { event: 'account.updated', target: a.name, changes: Object.keys(b).filter((k) => b[k as keyof typeof b] !== undefined) });
      },
      DELETE: async (call) => {
        const force = parseForce(call.query);
        const r = await mutate(call, (data) => deleteAccount(data, call.params.name!, force, call.op()));
        return ok({ deleted: r.account.name, tokens: r.tokens, certificates: r.certificates }, { event: 'account.deleted', target: r.account.name, tokens: r.tokens, certificates: r.certificates, force });
      },
    },
  },
  ...(['disable', 'enable'] as const).map(
    (verb): Route => ({
      segments: ['accounts', ':name', verb],
      methods: {
        POST: async (call) => {
          parseBody(emptyBody, await call.body());
          const disabled = verb === 'disable';
          const view = await mutate(call, (data) => {
            const a = updateAccount(data, call.params.name!, { disabled }, call.op());
            return accountView(a, data, call.nowMs);
          });
          return ok(view, { event: disabled ? 'account.disabled' : 'account.enabled', target: view.name });
        },
      },
    }),
  ),
  {
    segments: ['tokens'],
    query: { GET: ['account', 'status', 'expiring'] },
    methods: {
      GET: async ({ ctx, query, nowMs }) => {
        const filter = parseTokenFilter({ account: param(query, 'account'), status: param(query, 'status'), expiring: param(query, 'expiring') });
        const [data, used] = await Promise.all([ctx.store.read(), ctx.store.readUsage()]);
        if (filter.account !== undefined) findAccount(data, filter.account);
        return ok({ tokens: listTokens(data, used, filter, ctx.runtime().config, nowMs) });
      },
      POST: async (call) => {
        const b = parseBody(tokenCreateBody, await call.body());
        const expiresAt = expiry(b.expires, call.nowMs);
        const r = await mutate(call, (data) => {
          const created = createToken(data, { account: b.account, label: b.label, scopes: b.scopes ?? null, expiresAt, policy: b.policy ?? null }, call.op());
          return { ...created, view: tokenView(created.record, data, {}, call.ctx.runtime().config, call.nowMs) };
        });
        const t = r.record;
        return {
          status: 201,
          body: { token: r.secret, ...r.view },
          location: `${ADMIN_API_PREFIX}tokens/${t.id}`,
          event: { event: 'token.created', target: t.id, account: t.account, label: t.label, scopes: t.scopes, policy: t.policy, expiresAt: t.expiresAt },
        };
      },
    },
  },
  {
    segments: ['tokens', ':id'],
    methods: {
      GET: async ({ ctx, params, nowMs }) => {
        const [data, used] = await Promise.all([ctx.store.read(), ctx.store.readUsage()]);
        return ok(tokenView(findToken(data, params.id!), data, used, ctx.runtime().config, nowMs));
      },
      DELETE: async (call) => {
        const t = await mutate(call, (data) => deleteToken(data, call.params.id!));
        return ok({ deleted: t.id, account: t.account }, { event: 'token.deleted', target: t.id, account: t.account });
      },
    },
  },
  {
    segments: ['tokens', ':id', 'revoke'],
    methods: {
      POST: async (call) => {
        const b = parseBody(revokeBody, await call.body());
        const view = await mutate(call, (data) => tokenView(revokeToken(data, call.params.id!, b.reason, call.op()), data, {}, call.ctx.runtime().config, call.nowMs));
        return ok(view, { event: 'token.revoked', target: view.id, account: view.account, reason: view.revokeReason });
      },
    },
  },
  {
    segments: ['tokens', ':id', 'restore'],
    methods: {
      POST: async (call) => {
        parseBody(emptyBody, await call.body());
        const view = await mutate(call, (data) => tokenView(restoreToken(data, call.params.id!, call.op()), data, {}, call.ctx.runtime().config, call.nowMs));
        return ok(view, { event: 'token.restored', target: view.id, account: view.account });
      },
    },
  },
  {
    segments: ['tokens', ':id', 'rotate'],
    methods: {
      POST: async (call) => {
        const b = parseBody(rotateBody, await call.body());
        const overlapMs = parseDuration(b.overlap ?? '24h');
        if (overlapMs === undefined) throw bad(`invalid overlap "${b.overlap}": use a duration such as 24h`);
        const expiresAt = b.expires === undefined ? undefined : expiry(b.expires, call.nowMs);
        const r = await mutate(call, (data) => {
          const rotated = rotateToken(data, call.params.id!, overlapMs, call.op(), expiresAt);
          return { ...rotated, view: tokenView(rotated.record, data, {}, call.ctx.runtime().config, call.nowMs) };
        });
        return {
          status: 201,
          body: { token: r.secret, ...r.view, replaces: r.old.id, replacedExpiresAt: r.old.expiresAt },
          location: `${ADMIN_API_PREFIX}tokens/${r.record.id}`,
          event: { event: 'token.rotated', target: r.old.id, account: r.old.account, successor: r.record.id, oldExpiresAt: r.old.expiresAt, expiresAt: r.record.expiresAt },
        };
      },
    },
  },
  {
    segments: ['certificates'],
    query: { GET: ['account'] },
    methods: {
      GET: async ({ ctx, query, nowMs }) => {
        const account = param(query, 'account');
        const [data, used] = await Promise.all([ctx.store.read(), ctx.store.readUsage()]);
        if (account !== undefined) findAccount(data, account);
        return ok({ certificates: data.certificates.filter((c) => account === undefined || c.account === account).map((c) => bindingView(c, used, nowMs)) });
      },
      POST: async (call) => {
        const b = parseBody(bindBody, await call.body());
        const pem = b.certificate !== undefined ? certificateFromPem(b.certificate) : undefined;
        const endDate = expiry(b.endDate, call.nowMs);
        const c = await mutate(call, (data) =>
          bindCertificate(
            data,
            {
              account: b.account,
              match: pem ? 'fingerprint' : (b.match as CertMatch),
              value: pem ? pem.fingerprint : b.value!,
              nickname: b.nickname,
              endDate,
              scopes: b.scopes ?? null,
              policy: b.policy ?? null,
              serial: pem?.serial ?? null,
              notAfter: pem?.notAfter ?? null,
            },
            call.op(),
          ),
        );
        return {
          status: 201,
          body: bindingView(c, {}, call.nowMs),
          location: `${ADMIN_API_PREFIX}certificates/${encodeURIComponent(c.id)}`,
          event: { event: 'cert.bound', target: c.id, account: c.account, match: c.match, value: c.value, nickname: c.nickname, endDate: c.endDate },
        };
      },
    },
  },
  {
    segments: ['certificates', ':id'],
    methods: {
      GET: async ({ ctx, params, nowMs }) => {
        const [data, used] = await Promise.all([ctx.store.read(), ctx.store.readUsage()]);
        const c = data.certificates.find((x) => x.id === params.id);
        if (!c) throw new OperationError('not_found', `no certificate binding with id "${params.id}"`);
        return ok(bindingView(c, used, nowMs));
      },
      DELETE: async (call) => {
        const c = await mutate(call, (data) => unbindCertificate(data, call.params.id!));
        return ok({ deleted: c.id, account: c.account }, { event: 'cert.unbound', target: c.id, account: c.account, match: c.match, value: c.value });
      },
    },
  },
  {
    segments: ['explain'],
    query: { GET: ['account', 'token', 'method', 'path'] },
    methods: {
      GET: async ({ ctx, query, nowMs }) => {
        const account = param(query, 'account');
        const method = param(query, 'method');
        const path = param(query, 'path');
        if (!account || !method || !path) throw bad('explain needs the query parameters account, method and path (token is optional)');
        try {
          return ok(explainRequest(ctx.runtime(), { account, token: param(query, 'token'), method, path }, nowMs));
        } catch (err) {
          if (err instanceof ExplainInputError) throw bad(err.message);
          throw err;
        }
      },
    },
  },
];

/** Every path and method the admin API serves, in OpenAPI form; docs/openapi.yaml is tested against it. */
export function adminRouteTable(): Array<{ path: string; methods: string[] }> {
  return routes.map((r) => ({ path: ADMIN_API_PREFIX + r.segments.map((s) => (s.startsWith(':') ? `{${s.slice(1)}}` : s)).join('/'), methods: Object.keys(r.methods) }));
}

function match(segments: string[]): { route: Route; params: Record<string, string> } | undefined {
  for (const route of routes) {
    if (route.segments.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length; i++) {
      const want = route.segments[i]!;
      if (want.startsWith(':')) params[want.slice(1)] = segments[i]!;
      else if (want !== segments[i]) {
        ok = false;
        break;
      }
    }
    if (ok) return { route, params };
  }
  return undefined;
}

// ---- bodies ----------------------------------------------------------------------------------

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      req.resume(); // discard; the connection closes after the answer
      reject(new ApiError('KG_ERR_BODY_TOO_LARGE', `The request body is larger than ${MAX_BODY_BYTES} bytes.`, { connection: 'close' }));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.off('end', onEnd);
        req.resume();
        reject(new ApiError('KG_ERR_BODY_TOO_LARGE', `The request body is larger than ${MAX_BODY_BYTES} bytes.`, { connection: 'close' }));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(undefined);
      const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
      if (type !== 'application/json') return reject(bad('send the body as JSON with content-type: application/json'));
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(bad('the request body is not valid JSON'));
      }
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}

// ---- the handler -----------------------------------------------------------------------------

function errorOf(err: unknown): { error: KeygateError; unexpected: boolean } {
  if (err instanceof ApiError) return { error: new KeygateError(err.code, err.message || undefined, err.headers), unexpected: false };
  if (err instanceof OperationError) {
    const code: ErrorCode = err.kind === 'not_found' ? 'KG_ERR_NOT_FOUND' : err.kind === 'conflict' ? 'KG_ERR_CONFLICT' : 'KG_ERR_BAD_REQUEST';
    return { error: new KeygateError(code, err.message), unexpected: false };
  }
  if (err instanceof LockTimeoutError) return { error: new KeygateError('KG_ERR_STORE_UNAVAILABLE', 'The credential store is locked by another keygate command; retry.', { 'retry-after': '1' }), unexpected: false };
  if (err instanceof SourceError) return { error: new KeygateError('KG_ERR_STORE_UNAVAILABLE', 'The credential file has errors (run keygate check); nothing was changed.'), unexpected: true };
  return { error: new KeygateError('KG_ERR_STORE_UNAVAILABLE', 'The credential store could not be read or written.'), unexpected: true };
}

function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string, location?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-request-id': requestId,
    ...(location ? { location } : {}),
  });
  res.end(text);
}

export function mountAdminApi(ctx: AdminApiContext): AdminApiHandler {
  // Failed authentications are limited per client IP, as on the public listener.
  const failures = new MemoryRateLimiter(10_000);

  return (req, res) => {
    const rawId = req.headers['x-request-id'];
    const requestId = typeof rawId === 'string' && isSaneRequestId(rawId) ? rawId : randomUUID();
    const clientIp = clientAddress(req.socket.remoteAddress);
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0]!;
    const nowMs = ctx.now();
    const rt = ctx.runtime();
    const base = { requestId, method, path: path.length > 512 ? path.slice(0, 512) + '…' : path, clientIp };

    const refuse = (error: KeygateError, event: string, identity?: AdminIdentity) => {
      ctx.audit.event({ event, actor: identity ? `admin:${identity.account}` : 'anonymous', ...(identity ? { credential: identity.credential, auth: identity.auth } : {}), ...base, status: error.status, reason: error.code, detail: error.detail });
      writeProblem(res, error, requestId);
    };

    const auth = authenticateAdmin(req, rt, nowMs);
    if (!auth.ok) {
      if (auth.error.status === 401) {
        const r = failures.take(clientIp, rt.authFailurePolicy, nowMs);
        if (!r.allowed) return refuse(new KeygateError('KG_ERR_AUTH_RATE_LIMITED', undefined, { 'retry-after': String(r.retryAfterSec) }), 'admin.denied', auth.identity);
      }
      return refuse(auth.error, 'admin.denied', auth.identity);
    }
    const identity = auth.identity;
    const actor = `admin:${identity.account}`;
    const who = { actor, credential: identity.credential, auth: identity.auth };

    void (async () => {
      let reply: Reply;
      try {
        if (!path.startsWith(ADMIN_API_PREFIX)) throw new ApiError('KG_ERR_NOT_FOUND', `No admin resource at ${base.path}; the admin API lives under ${ADMIN_API_PREFIX}.`);
        let segments: string[];
        try {
          segments = path.slice(ADMIN_API_PREFIX.length).split('/').map(decodeURIComponent);
        } catch {
          throw bad('invalid percent-encoding in the path');
        }
        if (segments.at(-1) === '') segments.pop(); // a trailing slash names the same resource
        const found = match(segments);
        if (!found) throw new ApiError('KG_ERR_NOT_FOUND', `No admin resource at ${base.path}.`);
        const handler = found.route.methods[method];
        const allow = Object.keys(found.route.methods).join(', ');
        if (!handler) throw new ApiError('KG_ERR_METHOD_NOT_ALLOWED', `${method} is not supported here; use ${allow}.`, { allow });
        const query = new URL(url, 'http://admin.invalid').searchParams;
        allowQuery(query, found.route.query?.[method] ?? []);
        reply = await handler({ params: found.params, query, body: () => readBody(req), identity, ctx, op: () => ({ config: ctx.runtime().config, now: new Date(nowMs) }), nowMs });
      } catch (err) {
        const { error, unexpected } = errorOf(err);
        if (unexpected) ctx.logger.error({ err: (err as Error)?.message, requestId }, 'admin API call failed');
        ctx.audit.event({ event: 'admin.failed', ...who, target: base.path, ...base, status: error.status, reason: error.code, detail: error.detail });
        writeProblem(res, error, requestId);
        return;
      }
      if (reply.event) {
        const { event, target, ...fields } = reply.event;
        ctx.audit.event({ event, ...who, target, ...fields, ...base, status: reply.status });
      } else {
        ctx.audit.event({ event: 'admin.read', ...who, target: base.path, ...base, status: reply.status });
      }
      sendJson(res, reply.status, reply.body, requestId, reply.location);
    })();
  };
}

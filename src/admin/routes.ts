// The admin API's resources: accounts, tokens, certificate bindings, explain — every change
// through the lifecycle operations the CLI uses (store/operations.ts), inside
// CredentialStore.update; every read from the inventory the proxy serves right now. Each route
// names the query parameters it accepts, so a typo is a 400, not a silently ignored filter.
import { X509Certificate } from 'node:crypto';
import { parseDuration } from '../config/units.js';
import { bindCertificate, certificateFacts, findCertBinding, unbindCertificate } from '../store/cert-operations.js';
import { createAccount, createToken, deleteAccount, deleteToken, findAccount, findToken, parseOptionalExpiry, restoreToken, revokeToken, rotateToken, updateAccount, type AccountPatch, type OpContext } from '../store/operations.js';
import { accountDetail, accountView, accountViews, bindingView, listTokens, parseTokenFilter, tokenView } from '../store/views.js';
import type { CertMatch, StoreData } from '../store/types.js';
import type { AdminIdentity } from './auth.js';
import { accountCreateBody, accountPatchBody, bad, bindBody, emptyBody, parseBody, revokeBody, rotateBody, tokenCreateBody } from './bodies.js';
import type { AdminApiContext } from './context.js';
import { explainRequest, ExplainInputError } from './explain.js';

export const ADMIN_API_PREFIX = '/admin/v1/';

export interface Call {
  params: Record<string, string>;
  query: URLSearchParams;
  body: () => Promise<unknown>;
  identity: AdminIdentity;
  ctx: AdminApiContext;
  op: () => OpContext;
  nowMs: number;
}

export interface Reply {
  status: number;
  body: unknown;
  location?: string;
  /** The audit line of a change; reads are audited as admin.read. */
  event?: { event: string; target: string; [field: string]: unknown };
}

type Handler = (call: Call) => Promise<Reply>;

export interface Route {
  segments: string[];
  methods: Partial<Record<string, Handler>>;
  /** Query parameters each method accepts; anything else is a typo worth a 400. */
  query?: Partial<Record<string, string[]>>;
}

const ok = (body: unknown, event?: Reply['event']): Reply => ({ status: 200, body, event });

export function allowQuery(query: URLSearchParams, allowed: readonly string[]): void {
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

/** A change through the store; resolves once the proxy's own view (what reads return) has it. */
async function mutate<T>(call: Call, fn: (data: StoreData) => T): Promise<T> {
  const result = await call.ctx.store.update(fn, { actor: `admin:${call.identity.account}` });
  await call.ctx.sync();
  return result;
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

export const routes: Route[] = [
  {
    segments: ['accounts'],
    methods: {
      GET: async ({ ctx, nowMs }) => {
        const data = ctx.snapshot();
        return ok({ accounts: accountViews(data, nowMs) });
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
        const [data, used] = [ctx.snapshot(), ctx.usage()];
        return ok(accountDetail(findAccount(data, params.name!), data, used, ctx.config(), nowMs));
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
        const [data, used] = [ctx.snapshot(), ctx.usage()];
        if (filter.account !== undefined) findAccount(data, filter.account);
        return ok({ tokens: listTokens(data, used, filter, ctx.config(), nowMs) });
      },
      POST: async (call) => {
        const b = parseBody(tokenCreateBody, await call.body());
        const expiresAt = expiry(b.expires, call.nowMs);
        const r = await mutate(call, (data) => {
          const created = createToken(data, { account: b.account, label: b.label, scopes: b.scopes ?? null, expiresAt, policy: b.policy ?? null }, call.op());
          return { ...created, view: tokenView(created.record, data, {}, call.ctx.config(), call.nowMs) };
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
        const [data, used] = [ctx.snapshot(), ctx.usage()];
        return ok(tokenView(findToken(data, params.id!), data, used, ctx.config(), nowMs));
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
        const view = await mutate(call, (data) => tokenView(revokeToken(data, call.params.id!, b.reason, call.op()), data, {}, call.ctx.config(), call.nowMs));
        return ok(view, { event: 'token.revoked', target: view.id, account: view.account, reason: view.revokeReason });
      },
    },
  },
  {
    segments: ['tokens', ':id', 'restore'],
    methods: {
      POST: async (call) => {
        parseBody(emptyBody, await call.body());
        const view = await mutate(call, (data) => tokenView(restoreToken(data, call.params.id!, call.op()), data, {}, call.ctx.config(), call.nowMs));
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
          return { ...rotated, view: tokenView(rotated.record, data, {}, call.ctx.config(), call.nowMs) };
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
        const [data, used] = [ctx.snapshot(), ctx.usage()];
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
        const [data, used] = [ctx.snapshot(), ctx.usage()];
        return ok(bindingView(findCertBinding(data, params.id!), used, nowMs));
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
          return ok(await explainRequest(ctx.explain(), { account, token: param(query, 'token'), method, path }, nowMs));
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

export function match(segments: string[]): { route: Route; params: Record<string, string> } | undefined {
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

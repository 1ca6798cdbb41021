// `keygate explain` agrees with the running proxy. A varied inventory (accounts active,
// disabled, ended, ending; tokens with and without their own scopes, revoked, expired, of
// another environment and of none) meets a generated corpus of requests (methods × paths:
// normalization cases, ambiguous paths that must be 400, paths no route takes, public paths),
// drawn by a seeded generator so that every run sends the same requests. Each request goes to
// the built binary with its token's secret, and its (status, code) is compared with what
// explain says for the same (account, token id, method, path): all of them through
// `keygate explain --batch` (the CLI, from the files alone) and through the running proxy's
// GET /admin/v1/explain, a sample through `keygate explain --json` one by one. Then the same
// again in shadow mode and in maintenance, and a rate-limit case where the order matters.
// A mismatch prints the request and both answers.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigOrThrow } from '../../src/config/load.js';
import { FileStore } from '../../src/store/file/file-store.js';
import { createAccount, createToken, revokeToken, updateAccount, type OpContext } from '../../src/store/operations.js';
import { createTestEnv, eventually, readJsonLines, runCli, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { AUDIT_FLUSH_MS, SETUP_TIMEOUT_MS, adminCall, logLines } from './support.js';
import { seededRandom } from '../helpers/seeded-random.js';

const SEED = 0x6b657967; // "keyg"
const CORPUS = 2_000;
const DAY = 86_400_000;

interface Token {
  account: string;
  id: string;
  secret: string;
  /** What the inventory made it, for the report. */
  kind: string;
}

interface Req {
  n: number;
  token: Token;
  method: string;
  path: string;
}

/** What one side answered: the proxy's status and problem code, or explain's. */
interface Answer {
  status: number;
  code: string | null;
}

let env: TestEnv;
let proxy: ChildProxy;
let ops: Token;
const tokens: Token[] = [];

const config = (over: Record<string, unknown> = {}) => ({
  environment: 'prod',
  routes: [
    { pathPrefix: '/healthz', upstream: env.upstream.url, public: true },
    { pathPrefix: '/docs', upstream: env.upstream.url, public: true },
    { pathPrefix: '/api', upstream: env.upstream.url },
    { pathPrefix: '/v2', upstream: env.upstream.url },
  ],
  scopes: {
    'items:read': ['GET /api/items', 'GET /api/items/**'],
    'items:write': ['POST /api/items', 'PUT /api/items/*', 'PATCH /api/items/*', 'DELETE /api/items/*'],
    'reports:read': ['GET /api/reports/*', 'GET /api/reports/*/pages/**'],
    'status:read': ['GET /api/status'],
    'v2:all': ['* /v2/**'],
  },
  roles: {
    viewer: ['items:read', 'reports:read', 'status:read'],
    editor: ['items:read', 'items:write'],
    v2: ['v2:all'],
    admin: ['keygate:admin'],
  },
  // Rate limits must not decide anything in the corpus: generous budgets for tokens and for
  // failed authentications (which the corpus has many of). The tight ones are their own case.
  policies: { default: { rate: '100000/s', burst: 100000 }, tight: { rate: '3/h', burst: 3 }, shared: { rate: '3/h', burst: 3, per: 'account' } },
  authFailures: { rate: '100000/s', burst: 100000 },
  credentials: { warnBefore: '7d' },
  ...over,
});

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig(config());
  const cfg = loadConfigOrThrow(env.configFile).config;
  const now = Date.now();
  const at = (ms: number): OpContext => ({ config: cfg, now: new Date(ms) });
  const ctx = at(now);
  const past = at(now - 10 * DAY);
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const keep = (account: string, kind: string, r: { record: { id: string }; secret: string }) => {
    const t = { account, id: r.record.id, secret: r.secret, kind };
    tokens.push(t);
    return t;
  };
  // Written straight into the store with the operations the CLI runs: dozens of CLI start-ups
  // would only make this slow, and expired credentials are made as if long ago.
  await new FileStore(env.credentialsFile).update((d) => {
    createAccount(d, { name: 'ops', roles: ['admin'] }, ctx);
    ops = keep('ops', 'admin', createToken(d, { account: 'ops' }, ctx));
    createAccount(d, { name: 'reader', roles: ['viewer'] }, ctx);
    keep('reader', 'plain', createToken(d, { account: 'reader' }, ctx));
    keep('reader', 'own scopes items:read', createToken(d, { account: 'reader', scopes: ['items:read'] }, ctx));
    keep('reader', 'expiring in 2 days', createToken(d, { account: 'reader', expiresAt: new Date(now + 2 * DAY).toISOString() }, ctx));
    const revoked = keep('reader', 'revoked', createToken(d, { account: 'reader' }, ctx));
    revokeToken(d, revoked.id, 'test', ctx);
    keep('reader', 'expired', createToken(d, { account: 'reader', expiresAt: new Date(now - DAY).toISOString() }, past));
    keep('reader', 'environment dev', createToken(d, { account: 'reader' }, { ...ctx, config: { ...cfg, environment: 'dev' } }));
    keep('reader', 'no environment', createToken(d, { account: 'reader' }, { ...ctx, config: { ...cfg, environment: null } }));
    createAccount(d, { name: 'editor', roles: ['editor'] }, ctx);
    keep('editor', 'plain', createToken(d, { account: 'editor' }, ctx));
    keep('editor', 'own scopes items:write', createToken(d, { account: 'editor', scopes: ['items:write'] }, ctx));
    createAccount(d, { name: 'power', roles: ['viewer', 'editor', 'v2'] }, ctx);
    keep('power', 'plain', createToken(d, { account: 'power' }, ctx));
    keep('power', 'own scopes v2:all, reports:read', createToken(d, { account: 'power', scopes: ['v2:all', 'reports:read'] }, ctx));
    createAccount(d, { name: 'direct', scopes: ['status:read', 'v2:all'] }, ctx);
    keep('direct', 'plain', createToken(d, { account: 'direct' }, ctx));
    createAccount(d, { name: 'nobody', roles: [] }, ctx);
    keep('nobody', 'plain', createToken(d, { account: 'nobody' }, ctx));
    createAccount(d, { name: 'dormant', roles: ['viewer'] }, ctx);
    keep('dormant', 'account disabled', createToken(d, { account: 'dormant' }, ctx));
    updateAccount(d, 'dormant', { disabled: true }, ctx);
    createAccount(d, { name: 'former', roles: ['viewer'], endDate: day(now - 5 * DAY) }, past);
    keep('former', 'account ended', createToken(d, { account: 'former' }, past));
    createAccount(d, { name: 'leaving', roles: ['editor'], endDate: day(now + 3 * DAY) }, ctx);
    keep('leaving', 'account ending in 3 days', createToken(d, { account: 'leaving' }, ctx));
  });
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

// ---- the corpus ------------------------------------------------------------------------------

const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** A path drawn from the shapes the routes and scopes care about, then decorated. */
function drawPath(r: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const id = () => pick(['1', '42', 'x', 'caf%C3%A9', '%34%32', 'a.b', '~u', '-', '_x_']);
  const base = pick([
    () => '/api/items',
    () => `/api/items/${id()}`,
    () => `/api/items/${id()}/${id()}`,
    () => `/api/items/${id()}/${id()}/${id()}`,
    () => `/api/reports/${id()}`,
    () => `/api/reports/${id()}/pages`,
    () => `/api/reports/${id()}/pages/${id()}/${id()}`,
    () => '/api/reports',
    () => '/api/status',
    () => '/api/status/x',
    () => '/api',
    () => `/v2/${id()}`,
    () => `/v2/${id()}/${id()}`,
    () => '/v2',
    () => '/healthz',
    () => `/healthz/${id()}`,
    () => '/healthzz',
    () => `/docs/${id()}`,
    () => '/',
    () => '/other',
    () => '/apix/items',
    () => '/API/items',
    () => '/admin/v1/accounts',
  ])();
  // Mostly spellings that normalize to a path (and so reach the routes and scopes), a fifth
  // that must be refused as ambiguous.
  const benign = [
    (p: string) => p,
    (p: string) => p,
    (p: string) => p,
    (p: string) => p.replace(/\//g, () => (r() < 0.3 ? '//' : '/')),
    (p: string) => p.replace(/\/([^/]*)$/, '/./$1'),
    (p: string) => p.replace(/^\/([^/]+)\//, '/$1/zz/../'),
    (p: string) => p.replace(/^\/([^/]+)\//, '/$1/zz/%2e%2e/'),
    (p: string) => `${p}/`,
    (p: string) => `${p}/.`,
    (p: string) => p.replace(/i/g, '%69'),
    (p: string) => p.replace(/a/, '%61'),
    (p: string) => `${p}?q=${pick(['1', '..%2f', '%zz', '/api/items', ''])}`,
  ];
  const ambiguous = [
    (p: string) => `/..${p}`,
    (p: string) => `${p}/../../..`,
    (p: string) => encodeLastSlash(p, '%2F'),
    (p: string) => encodeLastSlash(p, '%2f'),
    (p: string) => `${p}%5C..`,
    (p: string) => `${p}%00`,
    (p: string) => `${p}%zz`,
    (p: string) => `${p}%4`,
  ];
  const decorate = pick(r() < 0.2 ? ambiguous : benign);
  return decorate(base);
}

/** The last "/" (not the first) written as `escape`: an encoded slash inside the path. */
function encodeLastSlash(p: string, escape: string): string {
  const at = p.lastIndexOf('/');
  return at > 0 ? p.slice(0, at) + escape + p.slice(at + 1) : `${p}${escape}x`;
}

function corpus(count: number, seed: number, from: readonly Token[]): Req[] {
  const r = seededRandom(seed);
  const out: Req[] = [];
  for (let n = 0; n < count; n++) out.push({ n, token: from[Math.floor(r() * from.length)]!, method: METHODS[Math.floor(r() * METHODS.length)]!, path: drawPath(r) });
  return out;
}

// ---- asking both sides -------------------------------------------------------------------------

const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
afterAll(() => agent.destroy());

/**
 * Sends the request to the proxy; the code comes from the problem body, or for HEAD (no body)
 * from its audit line. Once more on a kept-alive socket the proxy closed as it was reused (its
 * 5 s keepAliveTimeout ran out while the other side was asked, a race Node's documentation
 * names): that request never reached the proxy.
 */
function send(q: Req, tag: string, retried = false): Promise<{ status: number; code: string | null | undefined; requestId: string }> {
  const requestId = `${tag}-${q.n}`;
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: proxy.port, servername: 'api.test', method: q.method, path: q.path, agent, ca: env.serverCa.certPem, timeout: 10_000, headers: { host: 'api.test', 'x-api-key': q.token.secret, 'x-request-id': requestId } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          const status = res.statusCode!;
          if (status < 400) return resolve({ status, code: null, requestId });
          const problem = res.headers['content-type'] === 'application/problem+json' && body ? (JSON.parse(body) as { code: string }) : undefined;
          resolve({ status, code: problem?.code, requestId });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request ${q.n} timed out`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!retried && req.reusedSocket && err.code === 'ECONNRESET') return resolve(send(q, tag, true));
      reject(new Error(`request ${q.n} (${q.method} ${q.path}): ${err.message}`));
    });
    req.end();
  });
}

/** Runs `fn` over `items`, `width` at a time. */
async function pool<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** The proxy's answers; a HEAD refusal's code is read from the audit file. */
async function proxyAnswers(reqs: readonly Req[], tag: string): Promise<Answer[]> {
  const sent = await pool(reqs, 8, (q) => send(q, tag));
  const reasons = new Map<unknown, unknown>();
  const bodiless = sent.filter((s) => s.code === undefined);
  if (bodiless.length) {
    // The audit line's reason starts with the code of a refusal; the sink writes in order.
    const last = sent.at(-1)!.requestId;
    await eventually(() => readJsonLines(env.auditFile).some((a) => a.requestId === last), AUDIT_FLUSH_MS);
    for (const a of readJsonLines(env.auditFile)) if (a.event === 'request' && String(a.requestId).startsWith(`${tag}-`)) reasons.set(a.requestId, a.reason);
  }
  return sent.map((s) => ({ status: s.status, code: s.code !== undefined ? s.code : String(reasons.get(s.requestId)).split(' ')[0]! }));
}

interface Explained {
  decision: 'allow' | 'deny';
  refusal: { status: number; code: string } | null;
}

const fromExplain = (e: Explained): Answer => ({ status: e.refusal?.status ?? 200, code: e.refusal?.code ?? null });

/** All of them in one `keygate explain --batch -`: the CLI, from keygate.yaml and the store file. */
async function cliBatch(reqs: readonly Req[]): Promise<Answer[]> {
  const input = reqs.map((q) => JSON.stringify({ account: q.token.account, token: q.token.id, method: q.method, path: q.path })).join('\n') + '\n';
  const r = await runCli(['explain', '--batch', '-', '-c', env.configFile], { input, timeoutMs: 120_000 });
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trimEnd().split('\n');
  expect(lines).toHaveLength(reqs.length);
  return lines.map((l) => fromExplain(JSON.parse(l) as Explained));
}

/** GET /admin/v1/explain on the running proxy: the same dry run, with the proxy's own buckets. */
async function adminExplain(q: Req): Promise<Answer> {
  const query = new URLSearchParams({ account: q.token.account, token: q.token.id, method: q.method, path: q.path });
  const r = await adminCall(proxy.adminPort, ops.secret, 'GET', `/admin/v1/explain?${query}`);
  if (r.status !== 200) throw new Error(`explain of request ${q.n} answered ${r.status}: ${r.text}`);
  return fromExplain(r.body as Explained);
}

/** `keygate explain --json` for one request, as an operator runs it. */
async function cliSingle(q: Req): Promise<Answer> {
  const r = await env.cli(['explain', '--json', '--account', q.token.account, '--token', q.token.id, q.method, q.path]);
  const e = JSON.parse(r.stdout) as Explained;
  expect(r.code, r.stderr).toBe(e.refusal ? 1 : 0);
  return fromExplain(e);
}

const same = (a: Answer, b: Answer) => a.status === b.status && a.code === b.code;
const show = (a: Answer) => `${a.status}${a.code ? ` ${a.code}` : ''}`;

/** Every disagreement, each with the request and both answers. */
function mismatches(reqs: readonly Req[], proxied: readonly Answer[], explained: readonly Answer[], who: string): string[] {
  const out: string[] = [];
  reqs.forEach((q, i) => {
    if (!same(proxied[i]!, explained[i]!)) out.push(`#${q.n} ${q.method} ${q.path} as ${q.token.account} with ${q.token.id} (${q.token.kind}): proxy ${show(proxied[i]!)}, ${who} ${show(explained[i]!)}`);
  });
  return out;
}

function report(list: string[]): string {
  return `${list.length} disagreement(s):\n${list.slice(0, 40).join('\n')}${list.length > 40 ? `\n… and ${list.length - 40} more` : ''}`;
}

/** The corpus must reach every kind of answer, or agreeing on it would prove little. */
function expectVaried(answers: readonly Answer[], wanted: readonly string[]): void {
  const seen = new Set(answers.map(show));
  for (const w of wanted) expect(seen, `no answer ${w} in the corpus`).toContain(w);
}

/** Rewrites keygate.yaml under the running proxy and waits for its watcher to apply it. */
async function reconfigure(over: Record<string, unknown>): Promise<void> {
  const seen = logLines(proxy).length;
  env.writeConfig(config(over));
  await eventually(() => logLines(proxy).slice(seen).some((l) => l.msg === 'config reloaded'));
}

describe('keygate explain agrees with the running proxy', () => {
  let reqs: Req[];
  let proxied: Answer[];

  it(`on a corpus of ${CORPUS} generated requests (seed ${SEED.toString(16)}), through explain --batch`, async () => {
    reqs = corpus(CORPUS, SEED, tokens);
    proxied = await proxyAnswers(reqs, 'main');
    expectVaried(proxied, ['200', '400 KG_ERR_PATH_INVALID', '404 KG_ERR_NO_ROUTE', '401 KG_ERR_TOKEN_REVOKED', '401 KG_ERR_TOKEN_EXPIRED', '401 KG_ERR_TOKEN_WRONG_ENVIRONMENT', '401 KG_ERR_ACCOUNT_DISABLED', '401 KG_ERR_ACCOUNT_ENDED', '403 KG_ERR_SCOPE_DENIED']);
    // Every token and every method drawn, allowed and refused both.
    for (const t of tokens) expect(reqs.some((q) => q.token === t), t.kind).toBe(true);
    expect(proxied.filter((a) => a.status === 200).length).toBeGreaterThan(CORPUS / 10);
    const list = mismatches(reqs, proxied, await cliBatch(reqs), 'keygate explain --batch');
    expect(list, report(list)).toEqual([]);
  }, 180_000);

  it('through GET /admin/v1/explain of the running proxy, on the same corpus', async () => {
    const explained = await pool(reqs, 8, adminExplain);
    const list = mismatches(reqs, proxied, explained, '/admin/v1/explain');
    expect(list, report(list)).toEqual([]);
  }, 120_000);

  it('through keygate explain --json, one request at a time, on a sample', async () => {
    // One of each kind of answer (a node start-up each).
    const sample: number[] = [];
    const kinds = new Set<string>();
    proxied.forEach((a, i) => {
      if (!kinds.has(show(a))) {
        kinds.add(show(a));
        sample.push(i);
      }
    });
    const list: string[] = [];
    for (const i of sample) list.push(...mismatches([reqs[i]!], [proxied[i]!], [await cliSingle(reqs[i]!)], 'keygate explain --json'));
    expect(list, report(list)).toEqual([]);
  }, 180_000);

  it('in shadow mode, and in maintenance', async () => {
    try {
      for (const [mode, over, wanted] of [
        ['shadow', { authorization: { mode: 'shadow' } }, ['200', '401 KG_ERR_TOKEN_REVOKED']],
        ['maintenance', { maintenance: true }, ['200', '503 KG_ERR_MAINTENANCE']],
      ] as const) {
        await reconfigure(over);
        const some = corpus(400, SEED + mode.length, tokens);
        const answers = await proxyAnswers(some, mode);
        expectVaried(answers, wanted);
        if (mode === 'shadow') expect(answers.some((a) => a.code === 'KG_ERR_SCOPE_DENIED'), 'shadow mode admits what scopes deny').toBe(false);
        const list = [...mismatches(some, answers, await cliBatch(some), `keygate explain --batch (${mode})`), ...mismatches(some, answers, await pool(some, 8, adminExplain), `/admin/v1/explain (${mode})`)];
        expect(list, report(list)).toEqual([]);
      }
    } finally {
      // The next test expects the normal config, whatever happened here.
      await reconfigure({});
    }
  }, 180_000);
});

describe('with rate limits in the way', () => {
  it('/admin/v1/explain looks at the proxy’s own buckets: asked before each request, it predicts the 429', async () => {
    // Tokens of their own (per credential and per account policies), made now and loaded by
    // the proxy before the first request; the CLI's explain has buckets of its own, full.
    const cfg = loadConfigOrThrow(env.configFile).config;
    const ctx = { config: cfg, now: new Date() };
    const limited: Token[] = [];
    await new FileStore(env.credentialsFile).update((d) => {
      createAccount(d, { name: 'limited', roles: ['viewer'] }, ctx);
      const one = createToken(d, { account: 'limited', policy: 'tight' }, ctx);
      createAccount(d, { name: 'pair', roles: ['viewer'], policy: 'shared' }, ctx);
      const a = createToken(d, { account: 'pair' }, ctx);
      const b = createToken(d, { account: 'pair' }, ctx);
      for (const [account, r, kind] of [['limited', one, 'tight'], ['pair', a, 'shared a'], ['pair', b, 'shared b']] as const) limited.push({ account, id: r.record.id, secret: r.secret, kind });
    });
    for (const t of limited) await eventually(async () => (await adminCall(proxy.adminPort, ops.secret, 'GET', `/admin/v1/tokens/${t.id}`)).status === 200, 3_000);
    // A 403 spends budget too (limit runs before authorize), a 404 does not (no route, no chain).
    const paths = ['/api/items/1', '/api/items', '/nothing', '/api/nothing', '/api/items/2', '/api/items/3', '/api/reports/7'];
    const methods = ['GET', 'POST', 'GET', 'GET', 'GET', 'GET', 'GET'];
    const seq: Req[] = [];
    for (const [k, t] of [limited[0]!, limited[1]!, limited[2]!, limited[1]!].entries()) {
      paths.forEach((path, i) => seq.push({ n: k * 100 + i, token: t, method: methods[i]!, path }));
    }
    const list: string[] = [];
    const proxied: Answer[] = [];
    for (const q of seq) {
      const predicted = await adminExplain(q);
      const [got] = await proxyAnswers([q], `limit-${q.n}`);
      proxied.push(got!);
      list.push(...mismatches([q], [got!], [predicted], '/admin/v1/explain (asked just before)'));
    }
    expect(list, report(list)).toEqual([]);
    expectVaried(proxied, ['200', '403 KG_ERR_SCOPE_DENIED', '404 KG_ERR_NO_ROUTE', '429 KG_ERR_RATE_LIMITED']);
  }, 120_000);
});

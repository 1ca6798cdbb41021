// One strict schema for keygate.yaml: types and validation in one place. Unknown keys are
// errors (z.strictObject everywhere); durations and rates are turned into numbers here, once.
// Every field states its default. Paths stay as written; load.ts resolves them against the
// config file's folder.
// One module because it is the one reference of keygate.yaml: read top to bottom, it is the
// file's shape with every default (docs/configuration.md has a row per key, checked by a test).
import { z } from 'zod';
import { BUILTIN_SCOPES } from './builtin-scopes.js';
import { parseDuration, parseRate, type Rate } from './units.js';

const duration = (what = 'duration') =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid ${what} "${text}": use a number and a unit (500ms, 30s, 15m, 24h, 30d)` });
      return z.NEVER;
    }
    return ms;
  });

/**
 * A duration that ends up in a timer. Node cannot wait longer than 2^31-1 ms (24.8 days): a
 * longer timer fires after 1 ms instead, so `keepAliveTimeout: 30d` would close every idle
 * connection at once. Zero is no better: Node and undici read a 0 timeout as "no timeout" (a
 * slow client could then pin a connection for ever) and a 0 interval spins. Both are refused
 * rather than silently inverted; only `allowZero` fields (drain: exit at once) take 0.
 */
const MAX_TIMER_MS = 24 * 86_400_000;
const timerDuration = (opts: { allowZero?: boolean } = {}) =>
  duration()
    .refine((ms) => ms <= MAX_TIMER_MS, { message: 'a timeout or interval is at most 24d' })
    .refine((ms) => ms > 0 || opts.allowZero === true, { message: 'a timeout or interval must be longer than 0' });

const rate = z.string().transform((text, ctx): Rate => {
  const r = parseRate(text);
  if (!r) {
    ctx.addIssue({ code: 'custom', message: `invalid rate "${text}": use a positive count per s, m or h (10/s, 600/m, 5000/h)` });
    return z.NEVER;
  }
  return r;
});

// A port may come from ${ENV} inside quotes ("${PORT:-8443}"): digits read as a number.
const port = z.preprocess((v) => (typeof v === 'string' && /^\d{1,5}$/.test(v) ? Number(v) : v), z.number().int().min(0).max(65535));
const filePath = z.string().min(1, 'a file path is required');
const oneOrMany = z.union([filePath, z.array(filePath).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

export const NAME_PATTERN = /^[A-Za-z0-9:_.-]+$/;
const name = (what: string) => z.string().regex(NAME_PATTERN, `${what} names use letters, digits and : _ . -`);

export const ENVIRONMENT_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

/** `METHOD /path-pattern`; checked in detail by authorize/rules.ts when compiled. */
const scopeRule = z.string().min(1);

const tlsSchema = z.strictObject({
  /** Server certificate chain (PEM). Required. */
  cert: filePath,
  /** Server private key (PEM). Required. */
  key: filePath,
  /** Lowest TLS version accepted. Default TLSv1.2. */
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
});

const clientAuthSchema = z.strictObject({
  /** SNI host names starting with this prefix require a client certificate. Default "clientauth.". */
  hostPrefix: z.string().min(1).default('clientauth.'),
  /** Trusted issuers of client certificates: one PEM bundle or a list. Default none (no client certificate is trusted). */
  ca: oneOrMany.nullable().default(null),
  /** The client CA's private key; only `keygate cert issue` reads it. Default none. */
  caKey: filePath.nullable().default(null),
  /** Certificate revocation list(s) (PEM); when set, a revoked client certificate is refused. Default none. */
  crl: oneOrMany.nullable().default(null),
  /** Optional second TLS port on which every connection is in client-certificate mode, whatever the SNI. Default none. */
  port: port.nullable().default(null),
});

const listenLimitsSchema = z
  .strictObject({
  /** Largest request head (request line + headers) in bytes. Default 16384. */
  maxHeaderSize: z.number().int().min(1024).max(1_048_576).default(16_384),
  /** Time allowed for the client to send the request head. Default 10s. */
  headersTimeout: timerDuration().prefault('10s'),
  /** Time allowed for the whole request (head and body) to arrive. Default 60s. */
  requestTimeout: timerDuration().prefault('60s'),
  /** How long an idle keep-alive connection is kept open. Default 5s. */
  keepAliveTimeout: timerDuration().prefault('5s'),
  /** Time allowed for the TLS handshake. Default 10s. */
  handshakeTimeout: timerDuration().prefault('10s'),
  /** Requests served on one connection before it is closed; 0 = no limit. Default 0. */
  maxRequestsPerSocket: z.number().int().min(0).default(0),
  /** Concurrent client connections per listener; 0 = no limit. Default 0. */
  maxConnections: z.number().int().min(0).default(0),
  })
  // Node refuses to start a server whose head may take longer than the whole request
  // (ERR_OUT_OF_RANGE at listen): `keygate check` says so first, at the key.
  .refine((l) => l.headersTimeout <= l.requestTimeout, { message: 'requestTimeout must be at least headersTimeout (the head is part of the request)', path: ['requestTimeout'] });

/**
 * Method and URL override headers: an upstream that honours one acts on a method or path the
 * scope check never saw. Removed before forwarding unless a route lists them.
 */
export const OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url'] as const;
export type OverrideHeader = (typeof OVERRIDE_HEADERS)[number];
const overrideHeader = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.enum(OVERRIDE_HEADERS, { error: `allowOverrideHeaders takes ${OVERRIDE_HEADERS.join(', ')}` }));

/** HTTP/2 on the HTTPS listener(s); the defaults are Envoy's edge recommendations. */
const http2Schema = z.strictObject({
  /** Offer HTTP/2 by ALPN next to HTTP/1.1; false offers HTTP/1.1 alone. Default true. */
  enabled: z.boolean().default(true),
  /** Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). Default 100. */
  maxConcurrentStreams: z.number().int().min(1).max(10_000).default(100),
  /** Header fields per request, pseudo-headers not counted; more resets the stream. Default 100. */
  maxHeaderCount: z.number().int().min(8).max(10_000).default(100),
  /** A connection with no open stream for this long is closed with GOAWAY. Default 1h. */
  idleTimeout: timerDuration().prefault('1h'),
  /** A stream with no frame either way for this long: 408 before the answer's head, reset after. Default 5m. */
  streamIdleTimeout: timerDuration().prefault('5m'),
  /** Premature-reset rule (CVE-2023-44487): streams closed on a connection before the share of premature resets is judged. Default 500. */
  prematureResetTotalStreams: z.number().int().min(2).max(1_000_000).default(500),
  /** A stream that closes without an answer within this time of opening is a premature reset. Default 1s. */
  prematureResetMinLifetime: timerDuration().prefault('1s'),
});

const websocketSchema = z.strictObject({
  /** A tunnel with no byte either way for this long is closed (Close 1001 to both sides). Default 5m. */
  idleTimeout: timerDuration().prefault('5m'),
});

const listenSchema = z.strictObject({
  /** Address of the HTTPS listener. Default 0.0.0.0. */
  host: z.string().min(1).default('0.0.0.0'),
  /** Port of the HTTPS listener; 0 picks a free one. Default 8443. */
  port: port.default(8443),
  tls: tlsSchema,
  clientAuth: clientAuthSchema.prefault({}),
  limits: listenLimitsSchema.prefault({}),
  http2: http2Schema.prefault({}),
  websocket: websocketSchema.prefault({}),
  /**
   * Request header names with "_": dropped before forwarding (as NGINX does), refused with 400
   * (reject), or passed (allow). Frameworks that read `_` as `-` would otherwise take
   * `x_keygate_account` for keygate's own header. Default drop.
   */
  headersWithUnderscores: z.enum(['drop', 'reject', 'allow']).default('drop'),
});

const adminSchema = z.strictObject({
  /** Set false to run without the admin listener. Default true. */
  enabled: z.boolean().default(true),
  /** Address of the admin listener; keep it on loopback or a private network. Default 127.0.0.1. */
  host: z.string().min(1).default('127.0.0.1'),
  /** Port of the admin listener; 0 picks a free one. Default 9090. */
  port: port.default(9090),
  /** Serve the admin listener over TLS (with optional client certificates). Default plain HTTP. */
  tls: z.strictObject({ cert: filePath, key: filePath }).nullable().default(null),
});

const routeSchema = z.strictObject({
  /** Requests whose normalized path starts with this prefix take this route. Required. */
  pathPrefix: z.string().startsWith('/', 'pathPrefix must start with "/"'),
  /** Upstream origin, http:// or https:// (no path). Required. */
  upstream: z.url({ protocol: /^https?$/, error: 'upstream must be an http:// or https:// URL' }),
  /** Skip authentication, authorization and rate limits (health checks). Default false. */
  public: z.boolean().default(false),
  /** Time allowed for the upstream's response head, and between body chunks. Default 30s. */
  timeout: timerDuration().prefault('30s'),
  /** Keep-alive connections kept to this upstream (h2c, h2: HTTP/2 sessions, opened as streams need them). Default 128. */
  connections: z.number().int().min(1).max(10_000).default(128),
  /** How keygate speaks to the upstream: HTTP/1.1, HTTP/2 in clear text with prior knowledge (h2c, an http:// upstream), or HTTP/2 over TLS (h2, an https:// upstream). gRPC needs h2c or h2. Default http1. */
  protocol: z.enum(['http1', 'h2c', 'h2']).default('http1'),
  /** Override headers (X-HTTP-Method-Override, X-Original-URL, …) this route forwards. Default none. */
  allowOverrideHeaders: z.array(overrideHeader).default([]),
  /**
   * Request bodies with a Content-Length up to this many bytes are read whole before an
   * upstream connection is taken, so a client that trickles its body holds none; 0 streams
   * every body. Default 65536.
   */
  bufferBodyBytes: z.number().int().min(0).max(16_777_216).default(65_536),
  /**
   * Bodies streamed to this upstream at once (larger or chunked ones); the others wait for a
   * slot, within listen.limits.requestTimeout. Default: half of `connections`, at least 1.
   */
  streamingUploads: z.number().int().min(1).max(10_000).optional(),
});

const policySchema = z.strictObject({
  /** Sustained rate: 10/s, 600/m, 5000/h. Required. */
  rate,
  /** Bucket size: requests allowed in a burst. Default: one second's worth of the rate, at least 1. */
  burst: z.number().int().min(1).optional(),
  /** Whose bucket: each credential's own, or one shared by the whole account. Default credential. */
  per: z.enum(['credential', 'account']).default('credential'),
});

/** A redis:// or rediss:// URL that names a host; a database number in the path, if any. */
const redisUrl = z
  .string()
  .regex(/^rediss?:\/\//, 'redis url must start with redis:// or rediss://')
  .refine((text) => {
    try {
      const u = new URL(text);
      return u.hostname !== '' && /^(\/\d{0,5})?$/.test(u.pathname);
    } catch {
      return false;
    }
  }, 'redis url must look like redis://[user:password@]host[:port][/db]');

const redisTlsSchema = z
  .strictObject({
    /** CA bundle (PEM) that signs the Redis server's certificate. Default none (the system's trusted CAs). */
    ca: filePath.nullable().default(null),
    /** Client certificate chain (PEM), for a Redis that requires one (tls-auth-clients). Default none. */
    cert: filePath.nullable().default(null),
    /** Private key (PEM) of `cert`. Default none. */
    key: filePath.nullable().default(null),
    /** Name the server certificate must carry (and SNI). Default none (the URL's host). */
    servername: z.string().min(1).nullable().default(null),
  })
  .refine((t) => (t.cert === null) === (t.key === null), 'store.redis.tls: cert and key go together');

const redisSchema = z
  .strictObject({
    /** redis:// or rediss:// URL (user and password may be in it). Required. */
    url: redisUrl,
    /** ACL user name; overrides the URL's. Default none (the URL's, else Redis's default user). */
    username: z.string().min(1).nullable().default(null),
    /** Password; overrides the URL's. Write it as ${ENV_VAR}, never in the file. Default none (the URL's, if any). */
    password: z.string().min(1).nullable().default(null),
    /** TLS options; only with a rediss:// URL (which alone uses the system's CAs). Default none. */
    tls: redisTlsSchema.nullable().default(null),
    /** Prefix of every key keygate writes. Default "keygate:". */
    prefix: z.string().default('keygate:'),
    /** When Redis cannot be reached: refuse requests (closed) or admit them without limits (open). Default closed. */
    failMode: z.enum(['open', 'closed']).default('closed'),
    /** Time allowed to open a connection. Default 2s. */
    connectTimeout: timerDuration().prefault('2s'),
    /** Time allowed for a store command (reads, writes, the revision poll). Default 1s. */
    commandTimeout: timerDuration().prefault('1s'),
    /** Time allowed for one rate-limit check; past it the check counts as a failure. Default 100ms. */
    limitTimeout: timerDuration().prefault('100ms'),
    /** How often each replica compares its revision with Redis's (the backstop to pub/sub). Default 250ms. */
    pollInterval: timerDuration().prefault('250ms'),
    /** Changes kept in the change log; a replica further behind reloads everything. Default 10000. */
    changeLog: z.number().int().min(100).max(1_000_000).default(10_000),
  })
  .refine((r) => r.tls === null || r.url.startsWith('rediss://'), { message: 'store.redis.tls needs a rediss:// url', path: ['tls'] });

const storeSchema = z.strictObject({
  /** The credential file (embedded default store). Default credentials.yaml, next to this config. */
  file: filePath.default('credentials.yaml'),
  /** Shared store for several replicas. Default none. */
  redis: redisSchema.nullable().default(null),
  /** How often last-use times are written back. Default 30s. */
  usageFlushInterval: timerDuration().prefault('30s'),
  /** Time allowed at start for the first read of the inventory; a store that does not answer by then ends the start with an error. Default 30s. */
  startTimeout: timerDuration().prefault('30s'),
});

/** Past this a typo (`workers: 200`) would fork hundreds of processes; no host needs more. */
export const MAX_WORKERS = 64;

// `workers: ${WORKERS}` unquoted reads as a number, quoted as a string: digits count either way.
const WORKERS_MESSAGE = `workers is a whole number from 1 to ${MAX_WORKERS}, or auto (one per core)`;
const workersSchema = z.preprocess(
  (v) => (typeof v === 'string' && /^\d{1,3}$/.test(v) ? Number(v) : v),
  z.union([z.literal('auto'), z.number().int(WORKERS_MESSAGE).min(1, WORKERS_MESSAGE).max(MAX_WORKERS, WORKERS_MESSAGE)], { error: WORKERS_MESSAGE }),
);

const auditSchema = z.strictObject({
  /** "stdout" or a file path (appended to). Default stdout. */
  output: z.string().min(1).default('stdout'),
});

export const configSchema = z
  .strictObject({
    /** Name of this deployment's environment; embedded in token prefixes (kg_prod_…). Default none. */
    environment: z.string().regex(ENVIRONMENT_PATTERN, 'environment: lowercase letters and digits, starting with a letter, at most 16').nullable().default(null),
    listen: listenSchema,
    admin: adminSchema.prefault({}),
    /** First match wins. At least one route. */
    routes: z.array(routeSchema).min(1, 'at least one route is required'),
    /** Named permissions: lists of `METHOD /path-pattern`. Default none. */
    scopes: z.record(name('scope'), z.array(scopeRule)).default({}),
    /** Named bundles of scopes. Default none. */
    roles: z.record(name('role'), z.array(name('scope'))).default({}),
    /** Named rate limits; `default` applies to credentials that name none. Default none (no limit). */
    policies: z.record(name('policy'), policySchema).default({}),
    /** Failed authentications allowed per client IP before 429. Default 1/s with a burst of 30. */
    authFailures: z.strictObject({ rate, burst: z.number().int().min(1).default(30) }).prefault({ rate: '1/s' }),
    /** Enforce scope rules, or only log and count what would be denied (roll-out). Default enforce. */
    authorization: z.strictObject({ mode: z.enum(['enforce', 'shadow']).default('enforce') }).prefault({}),
    credentials: z
      .strictObject({
        /** Within this time of its end a used credential triggers the expiry warning. Default 14d. */
        warnBefore: duration().prefault('14d'),
      })
      .prefault({}),
    store: storeSchema.prefault({}),
    audit: auditSchema.prefault({}),
    /** Answer every non-public request with 503 (planned maintenance). Default false. */
    maintenance: z.boolean().default(false),
    shutdown: z
      .strictObject({
        /** On SIGTERM, how long in-flight requests may take before the process exits. Default 25s. */
        drainTimeout: timerDuration({ allowZero: true }).prefault('25s'),
      })
      .prefault({}),
    log: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info') }).prefault({}),
    /**
     * Processes that serve requests, sharing the listeners: a number, or `auto` for one per
     * core (os.availableParallelism()). With more than one, a supervisor process runs them and
     * the rate limits, metrics and audit log stay whole (docs/workers.md). Restart-only.
     * Default 1 (one process, no supervisor).
     */
    workers: workersSchema.default(1),
  })
  .superRefine((cfg, ctx) => {
    for (const [role, scopes] of Object.entries(cfg.roles)) {
      scopes.forEach((scope, i) => {
        if (!(scope in cfg.scopes) && !BUILTIN_SCOPES.has(scope)) ctx.addIssue({ code: 'custom', path: ['roles', role, i], message: `role "${role}" names unknown scope "${scope}"` });
      });
    }
    for (const [i, route] of cfg.routes.entries()) {
      // zod's URL check is looser than WHATWG's: a value it lets through may still not parse.
      let u: URL;
      try {
        u = new URL(route.upstream);
      } catch {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'upstream'], message: 'upstream must be an http:// or https:// URL' });
        continue;
      }
      if (u.pathname !== '/' || u.search || u.hash) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'upstream'], message: 'upstream is an origin only (scheme://host:port), without a path or query' });
      }
      if (route.protocol === 'h2c' && u.protocol !== 'http:') ctx.addIssue({ code: 'custom', path: ['routes', i, 'protocol'], message: 'protocol h2c is HTTP/2 in clear text: the upstream must be an http:// URL (use h2 for https://)' });
      if (route.protocol === 'h2' && u.protocol !== 'https:') ctx.addIssue({ code: 'custom', path: ['routes', i, 'protocol'], message: 'protocol h2 is HTTP/2 over TLS: the upstream must be an https:// URL (use h2c for http://)' });
    }
  });

export type KeygateConfig = z.output<typeof configSchema>;
export type RouteConfig = KeygateConfig['routes'][number];
export type PolicyConfig = KeygateConfig['policies'][string];
export type RedisConfig = NonNullable<KeygateConfig['store']['redis']>;

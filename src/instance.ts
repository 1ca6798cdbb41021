// A running keygate, composed from one config file: listeners, the request handler and its
// compiled chains, the credential store it follows, certificate sources, the admin server,
// watchers and reload. No signals and no process.exit here (that is main.ts, the process
// shell), so tests can run instances in-process with their own logger, audit sink, metrics
// registry and clock.
//
// State changes in three independent ways, each an atomic swap that keeps the old state when
// the new one is refused: the inventory (the store's feed, change by change), the TLS material
// (each certificate source on its own), and keygate.yaml (everything compiled again).
// One module because it is the composition root: each part above is built elsewhere and only
// wired here, and the order of start, reload and drain reads best in one place.
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import type { AdminApiContext } from './admin/context.js';
import { createAdminServer, type AdminApiHandler } from './admin/server.js';
import { loadConfig } from './config/load.js';
import type { KeygateConfig } from './config/schema.js';
import { formatProblem, SourceError, type Problem } from './config/source.js';
import { watchFile } from './config/watch-file.js';
import { Tunnels } from './forward/tunnel.js';
import { UpstreamPools } from './forward/upstream-pools.js';
import { expiryStage } from './identify/expiry-notice.js';
import { createListeners, type Listeners, type MaterialHolder } from './listener/servers.js';
import { createParserRefusalHandler } from './listener/parser-refusals.js';
import { createStreamRefuser } from './listener/stream-refusals.js';
import { TlsMaterialError } from './listener/tls-material.js';
import { RelaySource } from './listener/certificate-source.js';
import type { TlsSources } from './listener/tls-sources.js';
import { createAuditSink, type AuditSink } from './observe/audit.js';
import { CredentialExpiry, exportCertificateExpiry } from './observe/inventory-metrics.js';
import { createLogger, type Logger } from './observe/logger.js';
import { KeygateMetrics } from './observe/metrics.js';
import { compilePipeline, type CompiledPipeline } from './pipeline/compile.js';
import { createRequestHandler } from './pipeline/handler.js';
import { createLimiter } from './ratelimit/factory.js';
import { MemoryRateLimiter } from './ratelimit/limiter.js';
import { RedisRateLimiter } from './ratelimit/redis-limiter.js';
import { prepareConfig, restartOnlyChanges } from './runtime/build.js';
import { pipelineSpec, type CompiledConfig } from './runtime/compile.js';
import { Inventory } from './runtime/inventory.js';
import { explainRuntime, type ExplainRuntime } from './runtime/explain-runtime.js';
import { checkStoreData } from './store/check.js';
import { createStore, sharedStoreHealth } from './store/factory.js';
import type { CredentialStore } from './store/types.js';
import { UsageTracker } from './store/usage-tracker.js';
import type { RateLimiter } from './vocabulary/limits.js';
import type { CredentialIndex } from './vocabulary/principal.js';

export interface StartOptions {
  configFile: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  audit?: AuditSink;
  registry?: Registry;
  now?: () => number;
  /** Mounts the admin API on the admin listener (see admin/api.ts). */
  adminApi?: (ctx: AdminApiContext) => AdminApiHandler;
  /** In a worker process (workers > 1): its slot number, carried by its log lines. */
  worker?: number;
  /** The limiter without store.redis, and Redis's failMode-open fallback. Default: in this process's memory (a worker passes the coordinator's). */
  limiter?: RateLimiter;
  /** The admin listener of a worker process (workers/worker.ts). */
  adminListener?: AdminListenerOptions;
}

export interface AdminListenerOptions {
  /** Whether this process opens it (admin.enabled still applies): one worker does. */
  enabled: boolean;
  /** Bound instead of admin.port: a replaced worker keeps the port the first one got for 0. */
  port?: number;
  /** The /metrics text, instead of this instance's registry: the whole cluster's. */
  metrics?: () => Promise<string>;
  /** Also needed for /readyz 200: every worker is ready. */
  isReady?: () => boolean;
  /** Awaited by drain() once in-flight requests are done, before anything closes: /readyz keeps answering 503 until every worker has drained. */
  beforeClose?: () => Promise<void>;
}

export interface KeygateInstance {
  readonly https: AddressInfo;
  readonly clientAuth?: AddressInfo;
  readonly admin?: AddressInfo;
  readonly metrics: KeygateMetrics;
  readonly store: CredentialStore;
  /** The operational logger: the one passed in, else one at keygate.yaml's log.level. */
  readonly logger: Logger;
  config(): KeygateConfig;
  /** The credential index requests are identified against right now. */
  index(): CredentialIndex;
  isReady(): boolean;
  /** Reload config, credentials and certificates; false when the new state was rejected. */
  reload(trigger: string): Promise<boolean>;
  /** Stop taking requests, let in-flight ones finish (bounded), then close. */
  drain(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Rejects when `p` takes longer than `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms (store.startTimeout)`)), ms);
    }),
  ]);
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export async function startKeygate(opts: StartOptions): Promise<KeygateInstance> {
  const env = opts.env ?? process.env;
  const pools = new UpstreamPools();
  const first = loadConfig(opts.configFile, env);
  if (!first.loaded) throw new SourceError(first.problems);
  let loaded = first.loaded;
  const composeErrors: Array<[string, unknown]> = [];
  // A certificate file that loads but does not compose (a key that does not match the new
  // certificate…) is found when a source is rebuilt, long after start: from then on it is a
  // rejected TLS reload like any other (counted, logged, audited), not a quiet warning.
  let onComposeError = (source: string, e: unknown): void => void composeErrors.push([source, e]);
  const composeError = (source: string, e: unknown) => onComposeError(source, e);
  const prepared = prepareConfig(loaded, pools, composeError);
  if (!prepared.compiled || !prepared.tls) {
    await pools.closeAll(true);
    throw new SourceError(prepared.problems);
  }
  let compiled: CompiledConfig = prepared.compiled;
  let tls: TlsSources = prepared.tls;
  const config = loaded.config;
  const own = opts.logger ?? createLogger(config.log.level);
  const logger = opts.worker === undefined ? own : own.child({ worker: opts.worker });
  const audit = opts.audit ?? createAuditSink(config.audit.output);
  const registry = opts.registry ?? new Registry();
  const metrics = new KeygateMetrics(registry);
  const now = opts.now ?? Date.now;
  // Which replica made a change: in the shared store's change log and in management audit.
  const replica = `${hostname()}:${process.pid}`;
  metrics.storeUp.set(1);
  const health = sharedStoreHealth(config, { up: (up) => metrics.storeUp.set(up ? 1 : 0), error: (op) => metrics.storeErrors.labels(op).inc() }, logger);
  const store = createStore(config, { health, logger, actor: `replica:${replica}` });

  const reject = (source: string, problems: readonly Problem[]) => {
    const lines = problems.map(formatProblem);
    metrics.configReloads.labels('rejected').inc();
    logger.error({ source, problems: lines }, `${source} change rejected; keeping the previous state`);
    audit.event({ event: 'config.rejected', actor: 'keygate', target: source, problems: lines });
  };
  const accept = (source: string, trigger: string) => {
    logger.info({ source, trigger }, `${source} reloaded`);
    audit.event({ event: 'config.reloaded', actor: 'keygate', target: source, trigger });
  };

  const expiryMetrics = new CredentialExpiry(metrics, now);
  const opening = Inventory.open(store, () => compiled, {
    applied: (what, index, touched) => {
      metrics.storeReloads.labels('success').inc();
      metrics.configReloads.labels('success').inc();
      if (touched) expiryMetrics.some(index, touched);
      else expiryMetrics.all(index);
      const size = index.size;
      logger.info({ change: what, accounts: size.accounts, tokens: size.tokens, certificates: size.certificates }, 'credentials reloaded');
    },
    rejected: (problems) => {
      metrics.storeReloads.labels('rejected').inc();
      reject('credentials', problems);
    },
  });
  const inventory = await within(opening, config.store.startTimeout, `the credential store (${store.description}) did not deliver the inventory`).catch(async (err: unknown) => {
    await store.close();
    await pools.closeAll(true);
    throw err;
  });
  const index = () => inventory.index;

  const usage = new UsageTracker(store, (err) => logger.warn({ err: (err as Error).message }, 'could not write last-use times'));
  await usage.load();
  usage.start(config.store.usageFlushInterval);
  const limiter = createLimiter(config, { health, logger, local: opts.limiter });
  if (limiter instanceof RedisRateLimiter && !(await limiter.ready())) logger.warn({ store: store.description }, 'rate limits: Redis did not answer at start; failMode applies until it does');
  // Failed authentications are limited per replica: an attacker spraying one replica is slowed
  // there, without a Redis round trip for every guess.
  const failures = new MemoryRateLimiter(50_000);
  const expiry = expiryStage();
  let draining = false;
  const isDraining = () => draining;
  const tunnels = new Tunnels();
  metrics.tunnelsSource = () => tunnels.size;
  const enforce = (c: CompiledConfig) => compilePipeline(pipelineSpec(c, index), { limiter, failures, usage, expiry, isDraining, tunnels });
  let pipeline: CompiledPipeline = enforce(compiled);
  // Compiled on first use per version of the config and the index: explain is rare.
  let dryRun: ExplainRuntime | undefined;
  const explain = (): ExplainRuntime => {
    if (dryRun?.compiled !== compiled || dryRun.index !== index()) dryRun = explainRuntime(compiled, index(), limiter, isDraining);
    return dryRun;
  };
  const handler = createRequestHandler({ pipeline: () => pipeline, metrics, audit, logger, now });

  const holder: MaterialHolder = { material: tls.material.current(), prefix: compiled.clientAuthPrefix };
  // A TLS failure (handshake timeout, no shared cipher, plaintext on the port) is the
  // client's: logged at debug, never answered in HTTP (listener/parser-refusals.ts).
  const listeners: Listeners = createListeners(
    config,
    holder,
    handler.handle,
    (err) => logger.debug({ err: err.message, code: (err as { code?: string }).code }, 'TLS handshake failed'),
    createParserRefusalHandler({ metrics, audit }),
    createStreamRefuser({ metrics, audit }),
  );
  let ready = false;

  // The admin listener lives until restart; its material follows the sources of the config in
  // force, so that its certificate and client trust keep reloading after keygate.yaml has.
  const adminTls = tls.admin ? new RelaySource('admin tls', tls.admin) : undefined;
  const useTls = (next: TlsSources, followAdmin = true) => {
    tls = next;
    if (followAdmin && adminTls && next.admin) adminTls.follow(next.admin);
    const apply = () => {
      const m = tls.material.current();
      listeners.applyMaterial(m);
      exportCertificateExpiry(metrics, m.certificates);
      for (const w of m.warnings) logger.warn({ source: 'tls' }, w);
    };
    next.material.onChange(() => {
      if (tls === next) apply();
    });
    apply();
  };
  for (const [source, e] of composeErrors) logger.warn({ source, err: (e as Error).message }, 'TLS material could not be composed');
  onComposeError = (source, e) => {
    metrics.tlsReloads.labels('rejected').inc();
    reject('tls', [{ file: opts.configFile, line: 1, col: 1, message: `${source}: ${(e as Error)?.message ?? String(e)}` }]);
  };
  useTls(tls);
  expiryMetrics.all(index());

  // Reloads of keygate.yaml run one at a time, in order; a throw is a rejected reload, logged
  // and counted, never an unhandled rejection.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = (what: string, fn: () => boolean | Promise<boolean>): Promise<boolean> => {
    const p = chain.then(fn).catch((err: unknown) => {
      metrics.internalErrors.labels('reload').inc();
      logger.error({ err: (err as Error)?.message, stack: (err as Error)?.stack, source: what }, 'reload failed inside keygate; keeping the previous state');
      metrics.configReloads.labels('rejected').inc();
      return false;
    });
    chain = p;
    return p;
  };

  const reloadConfig = (trigger: string): boolean => {
    const { loaded: next, problems } = loadConfig(opts.configFile, env);
    if (!next) {
      reject('config', problems);
      return false;
    }
    const p = prepareConfig(next, pools, composeError);
    if (!p.compiled || !p.tls) {
      reject('config', p.problems);
      return false;
    }
    // The inventory in memory must hold against the new config too (a role it removed…).
    const data = index().snapshot();
    const dataProblems = checkStoreData(data, p.compiled.config);
    if (dataProblems.length) {
      reject('config', dataProblems.map((d) => ({ file: store.description, line: 1, col: 1, message: `${d.path.join('.')}: ${d.message}` })));
      return false;
    }
    const cfg = next.config;
    const restartOnly = restartOnlyChanges(loaded.config, cfg);
    if (restartOnly.length) logger.warn({ settings: restartOnly }, 'these settings change only on restart; the other changes are applied');
    loaded = next;
    compiled = p.compiled;
    inventory.rebuild(compiled);
    pipeline = enforce(compiled);
    holder.prefix = compiled.clientAuthPrefix;
    // A logger keygate made itself follows log.level; one passed in belongs to the caller.
    if (!opts.logger) logger.level = cfg.log.level;
    // A changed admin section waits for the restart, like the admin listener itself.
    useTls(p.tls, !restartOnly.includes('admin'));
    expiryMetrics.all(index());
    metrics.configReloads.labels('success').inc();
    accept('config', trigger);
    rewatch();
    void pools.retain(compiled.routes.map((r) => r.upstream));
    return true;
  };

  const reloadTlsSource = (source: TlsSources['files'][number], trigger: string): boolean => {
    const r = source.reload();
    if (r.ok) {
      metrics.tlsReloads.labels('success').inc();
      accept('tls', trigger);
      return true;
    }
    metrics.tlsReloads.labels('rejected').inc();
    const e = r.error;
    reject('tls', [e instanceof TlsMaterialError ? loaded.source.problemAt(e.path, e.message) : { file: opts.configFile, line: 1, col: 1, message: (e as Error)?.message ?? String(e) }]);
    return false;
  };

  // File watchers: keygate.yaml and every TLS file; the credential store watches itself.
  let unwatch: Array<() => void> = [];
  function rewatch() {
    for (const u of unwatch) u();
    unwatch = [
      watchFile(opts.configFile, () => void serial('config', () => reloadConfig('file change'))),
      ...tls.files.flatMap((source) => source.files().map((f) => watchFile(f, () => void serial('tls', () => reloadTlsSource(source, 'file change'))))),
    ];
  }
  rewatch();

  const adminContext: AdminApiContext = {
    config: () => compiled.config,
    snapshot: () => index().snapshot(),
    usage: () => usage.view(),
    index,
    authFailurePolicy: () => compiled.authFailurePolicy,
    explain,
    store,
    replica,
    sync: () => inventory.sync(),
    audit,
    logger,
    metrics,
    now,
  };
  const adminOpts = opts.adminListener;
  const adminServer =
    config.admin.enabled && (adminOpts?.enabled ?? true)
      ? createAdminServer(config.admin, {
          registry,
          metrics: adminOpts?.metrics,
          isReady: () => ready && !draining && (adminOpts?.isReady?.() ?? true),
          storeUp: health && (() => health.isUp),
          tls: adminTls,
          api: opts.adminApi?.(adminContext),
        })
      : undefined;

  let closed: Promise<void> | undefined;
  const closeAll = () =>
    (closed ??= (async () => {
      for (const u of unwatch) u();
      inventory.stop();
      usage.stop();
      for (const s of listeners.all()) {
        s.close();
        s.closeAllConnections();
      }
      listeners.destroySessions();
      if (adminServer) {
        adminServer.close();
        adminServer.closeAllConnections();
      }
      await usage.flush();
      await pools.closeAll(true);
      await limiter.close();
      await failures.close();
      await store.close();
      await audit.flush();
      if (!opts.audit) await audit.close();
    })());

  let httpsAddr: AddressInfo;
  let clientAuthAddr: AddressInfo | undefined;
  let adminAddr: AddressInfo | undefined;
  try {
    httpsAddr = await listen(listeners.main, config.listen.port, config.listen.host);
    if (listeners.clientAuth) clientAuthAddr = await listen(listeners.clientAuth, config.listen.clientAuth.port!, config.listen.host);
    if (adminServer) adminAddr = await listen(adminServer, adminOpts?.port ?? config.admin.port, config.admin.host);
  } catch (err) {
    await closeAll();
    throw err;
  }
  ready = true;
  metrics.ready.set(1);
  logger.info(
    { https: `${httpsAddr.address}:${httpsAddr.port}`, clientAuth: clientAuthAddr ? `${clientAuthAddr.address}:${clientAuthAddr.port}` : undefined, admin: adminAddr ? `${adminAddr.address}:${adminAddr.port}` : undefined, store: store.description },
    opts.worker === undefined ? 'keygate listening' : 'worker listening',
  );

  return {
    https: httpsAddr,
    clientAuth: clientAuthAddr,
    admin: adminAddr,
    metrics,
    store,
    logger,
    config: () => compiled.config,
    index,
    isReady: () => ready && !draining,
    // SIGHUP: config, credentials and certificates in one go.
    reload: async (trigger) => {
      const ok = await serial('config', () => reloadConfig(trigger));
      await inventory.sync();
      return ok;
    },
    drain: async (timeoutMs = loaded.config.shutdown.drainTimeout) => {
      draining = true;
      metrics.ready.set(0);
      for (const s of listeners.all()) {
        s.close();
        s.closeIdleConnections();
      }
      // HTTP/2 clients are told at once (GOAWAY) to take new requests elsewhere; their streams
      // in flight finish like HTTP/1.1 requests do.
      listeners.goAway();
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline && handler.inflight() > 0) {
        await new Promise((r) => setTimeout(r, 50));
      }
      // A WebSocket tunnel is in flight until one side ends it; past the drain timeout keygate
      // does, with a Close 1001 to both sides (bounded), so their audit lines are written too.
      await tunnels.closeAll();
      if (adminServer) await adminOpts?.beforeClose?.();
      await closeAll();
    },
    close: closeAll,
  };
}

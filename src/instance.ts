// A running keygate: listeners, admin server, watchers and reload, built from one config file.
// No signals and no process.exit here (that is main.ts, the process shell), so tests can run
// instances in-process with their own logger, audit sink and metrics registry.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { createAdminServer, type AdminApiHandler } from './admin/server.js';
import { buildAll, indexStore, loadMaterial, type Built } from './build.js';
import { formatProblem, SourceError, type Problem } from './config/source.js';
import { UpstreamPools } from './forward/upstream.js';
import { createListeners, type Listeners, type MaterialHolder } from './listener/servers.js';
import type { TlsMaterial } from './listener/tls-material.js';
import { createAuditSink, type AuditSink } from './observe/audit.js';
import { createLogger, type Logger } from './observe/logger.js';
import { KeygateMetrics } from './observe/metrics.js';
import { createClientErrorHandler } from './pipeline/client-error.js';
import { createRequestHandler, type PipelineState } from './pipeline/handler.js';
import type { Runtime } from './pipeline/runtime.js';
import { MemoryRateLimiter } from './ratelimit/limiter.js';
import { watchFile, type FileStore } from './store/file-store.js';
import { UsageTracker } from './store/usage-tracker.js';

export interface StartOptions {
  configFile: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  audit?: AuditSink;
  registry?: Registry;
  now?: () => number;
  /** Mounts the admin API on the admin listener (see admin/api.ts). */
  adminApi?: (ctx: AdminApiContext) => AdminApiHandler;
}

export interface AdminApiContext {
  runtime: () => Runtime;
  store: FileStore;
  configFile: string;
  audit: AuditSink;
  logger: Logger;
  now: () => number;
}

export interface KeygateInstance {
  readonly https: AddressInfo;
  readonly clientAuth?: AddressInfo;
  readonly admin?: AddressInfo;
  readonly metrics: KeygateMetrics;
  readonly store: FileStore;
  /** The operational logger: the one passed in, else one at keygate.yaml's log.level. */
  readonly logger: Logger;
  runtime(): Runtime;
  isReady(): boolean;
  /** Reload config, credentials and certificates; false when the new state was rejected. */
  reload(trigger: string): Promise<boolean>;
  /** Stop taking requests, let in-flight ones finish (bounded), then close. */
  drain(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
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
  const { built, store, problems } = await buildAll(opts.configFile, pools, env);
  if (!built || !store) {
    await pools.closeAll(true);
    throw new SourceError(problems);
  }
  const credentialStore: FileStore = store;
  let current: Built = built;
  const config = built.loaded.config;
  const logger = opts.logger ?? createLogger(config.log.level);
  const audit = opts.audit ?? createAuditSink(config.audit.output);
  const registry = opts.registry ?? new Registry();
  const metrics = new KeygateMetrics(registry);
  const now = opts.now ?? Date.now;
  const state: PipelineState = { runtime: built.runtime, draining: false, inflight: 0 };
  const usage = new UsageTracker(credentialStore, (err) => logger.warn({ err: (err as Error).message }, 'could not write last-use times'));
  usage.start(config.store.usageFlushInterval);
  const limiter = new MemoryRateLimiter(100_000);
  const failureLimiter = new MemoryRateLimiter(50_000);
  const handler = createRequestHandler({ state, metrics, audit, limiter, failureLimiter, usage, logger, now });
  const holder: MaterialHolder = { material: built.material, prefix: built.runtime.clientAuthPrefix };
  const listeners: Listeners = createListeners(config, holder, handler, (err) => logger.debug({ err: err.message }, 'TLS handshake failed'), createClientErrorHandler({ metrics, audit }));
  let ready = false;

  const exportExpiry = (rt: Runtime) => {
    metrics.credentialExpiry.reset();
    for (const a of rt.credentials.accounts.values()) if (a.endMs !== null) metrics.credentialExpiry.labels(a.name, 'account').set(a.endMs / 1000);
    for (const c of rt.credentials.byId.values()) {
      if (c.revoked) continue;
      metrics.credentialExpiry.labels(c.account.name, c.id).set(c.endsMs === null ? Infinity : c.endsMs / 1000);
    }
    metrics.forgetAccounts(new Set(rt.credentials.accounts.keys()));
  };
  const exportCertificates = (m: TlsMaterial) => {
    metrics.certificateExpiry.reset();
    for (const c of m.certificates) metrics.certificateExpiry.labels(c.kind, c.subject).set(c.notAfterMs / 1000);
    for (const w of m.warnings) logger.warn({ source: 'tls' }, w);
  };
  exportExpiry(built.runtime);
  exportCertificates(built.material);

  const reject = (source: string, problems: Problem[]) => {
    const lines = problems.map(formatProblem);
    logger.error({ source, problems: lines }, `${source} change rejected; keeping the previous state`);
    audit.event({ event: 'config.rejected', actor: 'keygate', target: source, problems: lines });
  };
  const accept = (source: string, trigger: string) => {
    logger.info({ source, trigger }, `${source} reloaded`);
    audit.event({ event: 'config.reloaded', actor: 'keygate', target: source, trigger });
  };

  // Reloads run one at a time, in order.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  const reloadAll = (trigger: string) =>
    serial(async () => {
      const { built, problems } = await buildAll(opts.configFile, pools, env);
      if (!built) {
        metrics.configReloads.labels('rejected').inc();
        reject('config', problems);
        return false;
      }
      let next: Built = built;
      // Sockets and server options are made once: changes to them wait for a restart, and
      // the operator is told so rather than left to wonder why nothing changed.
      const prev = current.loaded.config;
      const cfg = next.loaded.config;
      const restartOnly = [
        cfg.listen.port !== prev.listen.port || cfg.listen.host !== prev.listen.host ? 'listen.host/port' : '',
        cfg.listen.clientAuth.port !== prev.listen.clientAuth.port ? 'listen.clientAuth.port' : '',
        JSON.stringify(cfg.listen.limits) !== JSON.stringify(prev.listen.limits) ? 'listen.limits' : '',
        JSON.stringify(cfg.admin) !== JSON.stringify(prev.admin) ? 'admin' : '',
        cfg.audit.output !== prev.audit.output ? 'audit.output' : '',
        cfg.store.file !== prev.store.file ? 'store.file' : '',
      ].filter(Boolean);
      if (restartOnly.length) logger.warn({ settings: restartOnly }, 'these settings change only on restart; the other changes are applied');
      if (cfg.store.file !== prev.store.file) {
        // The watcher, last-use tracker and admin API stay on the store this process opened, so
        // the credentials served must come from it too, not from the newly named file.
        const { runtime, data, problems: storeProblems } = await indexStore(next.compiled, credentialStore);
        if (!runtime || !data) {
          metrics.configReloads.labels('rejected').inc();
          reject('config', storeProblems);
          return false;
        }
        next = { ...next, runtime, data };
      }
      swap(next);
      // A logger keygate made itself follows log.level; one passed in belongs to the caller.
      if (!opts.logger) logger.level = next.loaded.config.log.level;
      listeners.applyMaterial(next.material);
      exportCertificates(next.material);
      metrics.configReloads.labels('success').inc();
      accept('config', trigger);
      rewatch();
      await pools.retain(next.runtime.routes.map((r) => r.upstream));
      return true;
    });

  const reloadStore = (trigger: string) =>
    serial(async () => {
      const { runtime, data, problems } = await indexStore(current.compiled, credentialStore);
      if (!runtime || !data) {
        metrics.storeReloads.labels('rejected').inc();
        metrics.configReloads.labels('rejected').inc();
        reject('credentials', problems);
        return false;
      }
      swap({ ...current, runtime, data });
      metrics.storeReloads.labels('success').inc();
      metrics.configReloads.labels('success').inc();
      logger.info({ trigger, accounts: data.accounts.length, tokens: data.tokens.length, certificates: data.certificates.length }, 'credentials reloaded');
      return true;
    });

  const reloadTls = (trigger: string) =>
    serial(async () => {
      const { material, problems } = loadMaterial(current.loaded);
      if (!material) {
        metrics.tlsReloads.labels('rejected').inc();
        reject('tls', problems);
        return false;
      }
      current = { ...current, material };
      listeners.applyMaterial(material);
      exportCertificates(material);
      metrics.tlsReloads.labels('success').inc();
      accept('tls', trigger);
      return true;
    });

  function swap(next: Built) {
    current = next;
    holder.prefix = next.runtime.clientAuthPrefix;
    state.runtime = next.runtime;
    exportExpiry(next.runtime);
  }

  // File watchers: keygate.yaml, the credential file, every TLS file.
  let unwatch: Array<() => void> = [];
  function rewatch() {
    for (const u of unwatch) u();
    unwatch = [
      watchFile(opts.configFile, () => void reloadAll('file change')),
      watchFile(credentialStore.file, () => void reloadStore('file change')),
      ...current.material.files.map((f) => watchFile(f, () => void reloadTls('file change'))),
    ];
  }
  rewatch();

  const adminServer = config.admin.enabled
    ? createAdminServer(config.admin, {
        registry,
        isReady: () => ready && !state.draining,
        tlsMaterial: () => current.material,
        api: opts.adminApi?.({ runtime: () => state.runtime, store: credentialStore, configFile: opts.configFile, audit, logger, now }),
      })
    : undefined;

  let httpsAddr: AddressInfo;
  let clientAuthAddr: AddressInfo | undefined;
  let adminAddr: AddressInfo | undefined;
  try {
    httpsAddr = await listen(listeners.main, config.listen.port, config.listen.host);
    if (listeners.clientAuth) clientAuthAddr = await listen(listeners.clientAuth, config.listen.clientAuth.port!, config.listen.host);
    if (adminServer) adminAddr = await listen(adminServer, config.admin.port, config.admin.host);
  } catch (err) {
    for (const u of unwatch) u();
    usage.stop();
    for (const s of [...listeners.all(), adminServer]) s?.close();
    await pools.closeAll(true);
    throw err;
  }
  ready = true;
  metrics.ready.set(1);
  logger.info(
    { https: `${httpsAddr.address}:${httpsAddr.port}`, clientAuth: clientAuthAddr ? `${clientAuthAddr.address}:${clientAuthAddr.port}` : undefined, admin: adminAddr ? `${adminAddr.address}:${adminAddr.port}` : undefined, store: credentialStore.description },
    'keygate listening',
  );

  let closed: Promise<void> | undefined;
  const closeAll = () =>
    (closed ??= (async () => {
      for (const u of unwatch) u();
      usage.stop();
      for (const s of listeners.all()) {
        s.close();
        s.closeAllConnections();
      }
      if (adminServer) {
        adminServer.close();
        adminServer.closeAllConnections();
      }
      await usage.flush();
      await pools.closeAll(true);
      await limiter.close();
      await failureLimiter.close();
      await audit.flush();
      if (!opts.audit) await audit.close();
    })());

  return {
    https: httpsAddr,
    clientAuth: clientAuthAddr,
    admin: adminAddr,
    metrics,
    store: credentialStore,
    logger,
    runtime: () => state.runtime,
    isReady: () => ready && !state.draining,
    reload: async (trigger) => {
      // SIGHUP: config (which includes credentials and certificates) in one go.
      const ok = await reloadAll(trigger);
      return ok;
    },
    drain: async (timeoutMs = current.loaded.config.shutdown.drainTimeout) => {
      state.draining = true;
      metrics.ready.set(0);
      for (const s of listeners.all()) {
        s.close();
        s.closeIdleConnections();
      }
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline && state.inflight > 0) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await closeAll();
    },
    close: closeAll,
  };
}



// The supervisor of `workers` > 1: the cluster primary. It serves no request — the workers
// share the listeners (node:cluster hands each new connection to the next worker in turn) and
// each runs a whole keygate instance — and it owns what must be one per pod:
//   - the rate-limit coordinator (coordinator.ts) when there is no Redis,
//   - the one writer of audit.output (audit-relay.ts),
//   - the sum of every worker's metrics, asked for by the admin worker's /metrics,
//   - readiness: /readyz is 200 only while every worker is ready, 503 from the first moment of
//     a drain,
//   - signals: SIGHUP and SIGTERM reach every worker (the shell, main.ts, wires them here),
//   - replacing a worker that died, with a back-off so that a crash loop does not spin.
// The admin listener (and so the admin API, the single writer through it) lives in worker 1.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { loadConfig, loadConfigOrThrow } from '../config/load.js';
import { openAuditDestination } from '../observe/audit.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { LimitCoordinator } from './coordinator.js';
import { WORKER_ENV, workerMessage, type PrimaryMessage } from './protocol.js';

export interface SupervisorOptions {
  configFile: string;
  env: NodeJS.ProcessEnv;
  workers: number;
  /** Default: one at keygate.yaml's log.level, which follows reloads. */
  logger?: Logger;
}

export interface Supervisor {
  readonly logger: Logger;
  /** Resolves once every worker listens; rejects when one could not start (the others are then ended). */
  readonly started: Promise<void>;
  /** SIGHUP: every worker reloads config, credentials and certificates. */
  reload(trigger: string): void;
  /** Drains every worker; resolves with the exit code: 0 when every worker drained and exited 0. */
  stop(signal: string): Promise<number>;
}

/** A worker lived this long: its next crash starts the back-off from the beginning again. */
export const STABLE_AFTER_MS = 30_000;

/** Wait before replacing a worker that died for the n-th time in a row: 250 ms, doubling, at most 30 s. */
export function restartDelayMs(failures: number): number {
  return Math.min(30_000, 250 * 2 ** Math.max(0, Math.min(failures, 20) - 1));
}

interface Slot {
  n: number;
  worker?: Worker;
  state: 'starting' | 'ready' | 'draining' | 'down';
  failures: number;
  readySince?: number;
  timer?: NodeJS.Timeout;
}

/** Forks the workers; stop() and reload() may be called at once, also while they start. */
export function startSupervisor(opts: SupervisorOptions): Supervisor {
  const loaded = loadConfigOrThrow(opts.configFile, opts.env);
  const config = loaded.config;
  const logger = (opts.logger ?? createLogger(config.log.level)).child({ role: 'supervisor' });
  const audit = openAuditDestination(config.audit.output);
  const coordinator = new LimitCoordinator({ workers: opts.workers });
  const registry = new Registry();
  const aggregator = new AggregatorRegistry();
  const restarts = new Counter({ name: 'keygate_worker_restarts_total', help: 'Workers that ended without being asked to and were replaced.', registers: [registry] });
  const readyGauge = new Gauge({ name: 'keygate_workers_ready', help: 'Worker processes ready to serve, of keygate_workers_configured.', registers: [registry] });
  new Gauge({ name: 'keygate_workers_configured', help: 'Worker processes keygate.yaml asks for (workers).', registers: [registry] }).set(opts.workers);
  const adminEnabled = config.admin.enabled;
  let adminPort: number | undefined;
  let addresses: { https: string; clientAuth?: string; admin?: string } | undefined;

  const slots: Slot[] = Array.from({ length: opts.workers }, (_, i) => ({ n: i + 1, state: 'down', failures: 0 }));
  let started = false;
  let stopping = false;
  let clusterReady = false;
  let startResult: { resolve: () => void; reject: (err: Error) => void } | undefined;
  const whenStarted = new Promise<void>((resolve, reject) => (startResult = { resolve, reject }));
  /** Exit codes of the workers alive when the drain began. */
  const drained = new Map<number, number | null>();
  let allGone: (() => void) | undefined;

  const send = (w: Worker | undefined, m: PrimaryMessage) => {
    if (!w?.isConnected()) return;
    try {
      w.send(m);
    } catch {
      // the worker is exiting; its exit event follows
    }
  };
  const alive = () => slots.filter((s) => s.worker !== undefined);

  const updateReadiness = () => {
    readyGauge.set(slots.filter((s) => s.state === 'ready').length);
    const ready = started && !stopping && slots.every((s) => s.state === 'ready');
    if (ready !== clusterReady) {
      clusterReady = ready;
      logger.info({ ready }, ready ? 'every worker is ready' : 'not every worker is ready: /readyz answers 503');
    }
    send(slots[0]?.worker, { kg: 'cluster', ready });
  };

  const collectMetrics = async (): Promise<string> => {
    const workers = await aggregator.clusterMetrics();
    return workers + (await registry.metrics());
  };

  const fork = (slot: Slot) => {
    slot.timer = undefined;
    const isAdmin = slot.n === 1 && adminEnabled;
    const worker = cluster.fork({
      [WORKER_ENV.slot]: String(slot.n),
      [WORKER_ENV.count]: String(opts.workers),
      [WORKER_ENV.admin]: isAdmin ? '1' : '0',
      // A replaced admin worker binds the port its predecessor got, when the config says 0.
      ...(isAdmin && adminPort !== undefined && config.admin.port === 0 ? { [WORKER_ENV.adminPort]: String(adminPort) } : {}),
    });
    slot.worker = worker;
    slot.state = 'starting';
    const pid = worker.process.pid;
    worker.on('message', (raw: unknown) => {
      const m = workerMessage(raw);
      if (!m) return;
      switch (m.kg) {
        case 'lease': {
          const g = coordinator.lease(slot.n, m.key, m.policy, m.held, m.want);
          return send(worker, { kg: 'lease', id: m.id, ...g });
        }
        case 'peek':
          return send(worker, { kg: 'peek', id: m.id, ...coordinator.peek(m.key, m.policy) });
        case 'audit':
          return audit.write(m.lines.endsWith('\n') ? m.lines : m.lines + '\n');
        case 'metrics':
          return void collectMetrics().then(
            (text) => send(worker, { kg: 'metrics', id: m.id, text }),
            (err: unknown) => send(worker, { kg: 'metrics', id: m.id, error: (err as Error)?.message ?? String(err) }),
          );
        case 'up': {
          if (slot.worker !== worker) return;
          // A drain asked for before this worker listened for messages reaches it now.
          if (stopping) send(worker, { kg: 'drain' });
          slot.state = stopping ? 'draining' : 'ready';
          slot.readySince = Date.now();
          if (m.admin) adminPort = Number(m.admin.slice(m.admin.lastIndexOf(':') + 1));
          addresses = { https: m.https, clientAuth: m.clientAuth ?? addresses?.clientAuth, admin: m.admin ?? addresses?.admin };
          logger.info({ worker: slot.n, pid }, started ? 'worker replaced' : 'worker up');
          if (!started && slots.every((s) => s.state === 'ready')) {
            started = true;
            logger.info({ ...addresses, workers: opts.workers }, 'keygate listening');
            startResult?.resolve();
          }
          return updateReadiness();
        }
        case 'draining':
          if (slot.worker === worker && slot.state !== 'down') slot.state = 'draining';
          return updateReadiness();
      }
    });
    // Gone once it has exited and its IPC channel is closed: only then has every message it
    // sent (its last audit lines) been read.
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let disconnected = false;
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      exited = { code, signal };
      if (disconnected) gone(exited.code, exited.signal);
    });
    worker.on('disconnect', () => {
      disconnected = true;
      if (exited) gone(exited.code, exited.signal);
    });
    const gone = (code: number | null, signal: NodeJS.Signals | null) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      slot.state = 'down';
      updateReadiness();
      if (stopping) {
        if (drained.has(slot.n)) drained.set(slot.n, signal ? null : code);
        const left = alive();
        // The admin worker keeps /readyz (503) up until it is the last one.
        if (left.length === 1 && left[0]!.n === 1) send(left[0]!.worker, { kg: 'release' });
        if (left.length === 0) allGone?.();
        return;
      }
      if (!started) {
        logger.fatal({ worker: slot.n, pid, code, signal }, 'a worker could not start; stopping');
        void abortStart(new Error(`worker ${slot.n} exited with ${signal ?? code} while starting`));
        return;
      }
      restarts.inc();
      if (slot.readySince !== undefined && Date.now() - slot.readySince >= STABLE_AFTER_MS) slot.failures = 0;
      slot.failures++;
      slot.readySince = undefined;
      const delay = restartDelayMs(slot.failures);
      logger.error({ worker: slot.n, pid, code, signal, restartInMs: delay, failuresInARow: slot.failures }, 'worker exited unexpectedly; starting a replacement');
      slot.timer = setTimeout(() => fork(slot), delay);
    };
  };

  const everyoneGone = () => new Promise<void>((resolve) => (alive().length === 0 ? resolve() : (allGone = resolve)));

  const stop = async (signal: string): Promise<number> => {
    if (stopping && !started) {
      // A start that failed is ending the workers already.
      await whenStarted.catch(() => undefined);
      return 1;
    }
    stopping = true;
    for (const s of slots) {
      clearTimeout(s.timer);
      s.timer = undefined;
    }
    logger.info({ signal, workers: alive().length }, 'draining: readiness is now 503, every worker finishes its in-flight requests');
    updateReadiness();
    // shutdown.drainTimeout as the file says now (reloadable), bounding the whole drain.
    const now = loadConfig(opts.configFile, opts.env).loaded?.config ?? config;
    const bound = now.shutdown.drainTimeout + 10_000;
    for (const s of alive()) {
      drained.set(s.n, null);
      s.state = 'draining';
      send(s.worker, { kg: 'drain' });
    }
    if (alive().length === 1 && alive()[0]!.n === 1) send(slots[0]!.worker, { kg: 'release' });
    const gone = everyoneGone();
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([gone.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), bound)))]);
    clearTimeout(timer);
    if (!inTime) {
      logger.error({ workers: alive().map((s) => s.n), boundMs: bound }, 'workers did not end in time; killing them');
      for (const s of alive()) s.worker?.process.kill('SIGKILL');
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    }
    await audit.close();
    const codes = [...drained.values()];
    return inTime && codes.every((c) => c === 0) ? 0 : 1;
  };

  let stopped: Promise<number> | undefined;
  const supervisor: Supervisor = {
    logger,
    started: whenStarted,
    reload(trigger) {
      if (stopping) return;
      // The supervisor's own part of keygate.yaml that follows reloads: log.level.
      const next = loadConfig(opts.configFile, opts.env).loaded;
      if (next && !opts.logger) logger.level = next.config.log.level;
      logger.info({ trigger, workers: alive().length }, 'reloading every worker');
      for (const s of alive()) send(s.worker, { kg: 'reload', trigger });
    },
    stop: (signal) => (stopped ??= stop(signal)),
  };

  // One worker could not start (its own log says why): end the others, then report it.
  const abortStart = async (err: Error) => {
    stopping = true;
    for (const s of alive()) s.worker?.process.kill('SIGTERM');
    await Promise.race([everyoneGone(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    for (const s of alive()) s.worker?.process.kill('SIGKILL');
    await audit.close();
    startResult?.reject(err);
  };

  logger.info({ workers: opts.workers, pid: process.pid }, 'starting workers');
  for (const s of slots) fork(s);
  return supervisor;
}

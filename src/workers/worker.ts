// The worker side of `workers` > 1: what a worker process passes to startKeygate so that it
// is one of N (the coordinator's limiter, the audit relay, a registry the supervisor can sum,
// the admin listener in exactly one of them), and the IPC it answers (reload, drain). The
// process shell (main.ts) starts the instance and ends the process, as for one process.
import cluster from 'node:cluster';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { AdminListenerOptions, KeygateInstance, StartOptions } from '../instance.js';
import type { Logger } from '../observe/logger.js';
import { MemoryRateLimiter } from '../ratelimit/limiter.js';
import { RelayAuditSink } from './audit-relay.js';
import { LeasedRateLimiter, type LeaseTransport } from './leased-limiter.js';
import { primaryMessage, WORKER_ENV, type PrimaryMessage, type WorkerMessage } from './protocol.js';

/** A lease or peek the supervisor has not answered by then is answered by this worker alone. */
const LIMIT_TIMEOUT_MS = 1_000;
/** Collecting every worker's metrics: prom-client itself gives up after 5 s. */
const METRICS_TIMEOUT_MS = 10_000;
/** The admin worker waits this long at most for the others to drain (the supervisor bounds it too). */
const RELEASE_TIMEOUT_MS = 120_000;

type Reply = Extract<PrimaryMessage, { id: number }>;
type Request = Extract<WorkerMessage, { id: number }>;
type Payload<K extends Request['kg']> = Omit<Extract<Request, { kg: K }>, 'id' | 'kg'>;

export interface WorkerSide {
  slot: number;
  /** What startKeygate takes in this worker (audit, registry, limiter, admin listener). */
  readonly startOptions: Pick<StartOptions, 'worker' | 'audit' | 'registry' | 'limiter' | 'adminListener'>;
  /** Tells the supervisor this worker takes traffic, and answers its reload and drain. */
  serving(instance: KeygateInstance, handlers: { reload: (trigger: string) => void; drain: (why: string) => void }): void;
  /** The instance drains on its own (a signal to this process): the supervisor should know. */
  draining(): void;
  /** Hands the last audit lines over; call after the instance closed. */
  close(): Promise<void>;
}

/**
 * In a cluster worker: the pieces above, wired to the IPC channel to the supervisor.
 * `orphaned` is called when the supervisor goes away before this worker serves (the shell
 * ends the process: nothing it could start would be coordinated).
 */
export function joinCluster(env: NodeJS.ProcessEnv, orphaned: () => void, logger?: Logger): WorkerSide {
  const slot = Number(env[WORKER_ENV.slot] ?? '0');
  const workers = Number(env[WORKER_ENV.count] ?? '1');
  const pending = new Map<number, { resolve: (m: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 1;
  let clusterReady = false;
  let released: (() => void) | undefined;
  const releasedOnce = new Promise<void>((resolve) => (released = resolve));
  let handlers: { reload: (trigger: string) => void; drain: (why: string) => void } | undefined;
  /** A drain asked for while this worker was still starting: done as soon as it serves. */
  let drainAsked: string | undefined;
  const drain = (why: string) => (handlers ? handlers.drain(why) : (drainAsked ??= why));

  const send = (m: WorkerMessage): Promise<void> =>
    new Promise((resolve, reject) => {
      if (!process.connected || !process.send) return reject(new Error('the IPC channel to the supervisor is closed'));
      try {
        process.send(m, undefined, undefined, (err: Error | null) => (err ? reject(err) : resolve()));
      } catch (err) {
        reject(err as Error);
      }
    });

  const call = <K extends Request['kg']>(kg: K, body: Payload<K>, timeoutMs: number): Promise<Extract<Reply, { kg: K }>> => {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the supervisor did not answer a ${kg} request within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, { resolve: resolve as (m: Reply) => void, reject, timer });
      send({ kg, id, ...body } as unknown as WorkerMessage).catch((err: Error) => {
        clearTimeout(timer);
        pending.delete(id);
        reject(err);
      });
    });
  };

  process.on('message', (raw: unknown) => {
    const m = primaryMessage(raw);
    if (!m) return; // node:cluster's and prom-client's own messages share the channel
    switch (m.kg) {
      case 'lease':
      case 'peek':
      case 'metrics': {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        clearTimeout(p.timer);
        p.resolve(m);
        return;
      }
      case 'cluster':
        clusterReady = m.ready;
        return;
      case 'release':
        released?.();
        return;
      case 'reload':
        handlers?.reload(m.trigger);
        return;
      case 'drain':
        drain('supervisor');
        return;
    }
  });
  // The supervisor is gone (it crashed or was killed): no one coordinates limits or writes
  // the audit log any more, so this worker drains and ends rather than serve on alone.
  process.on('disconnect', () => {
    released?.();
    if (handlers) handlers.drain('supervisor gone');
    else orphaned();
  });
  // node:cluster reports a failed send to the supervisor (gone mid-start) as an 'error' event
  // of the worker, which unhandled would end the process with a stack trace.
  cluster.worker?.on('error', (err: Error) => logger?.warn({ err: err.message }, 'the IPC channel to the supervisor failed'));

  const transport: LeaseTransport = {
    lease: (key, policy, held, want) => call('lease', { key, policy, held, want }, LIMIT_TIMEOUT_MS),
    peek: (key, policy) => call('peek', { key, policy }, LIMIT_TIMEOUT_MS),
  };
  const limiter = new LeasedRateLimiter(transport, { workers, fallback: new MemoryRateLimiter(100_000), logger });
  const audit = new RelayAuditSink({ send: (lines) => send({ kg: 'audit', lines }), worker: slot });
  // prom-client answers the supervisor's collection requests from these registries.
  const registry = new Registry();
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);

  const isAdmin = env[WORKER_ENV.admin] === '1';
  const adminPort = env[WORKER_ENV.adminPort] ? Number(env[WORKER_ENV.adminPort]) : undefined;
  const adminListener: AdminListenerOptions = {
    enabled: isAdmin,
    port: adminPort,
    metrics: async () => {
      const r = await call('metrics', {}, METRICS_TIMEOUT_MS);
      if (r.text === undefined) throw new Error(r.error ?? 'no metrics');
      return r.text;
    },
    isReady: () => clusterReady,
    beforeClose: () => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([releasedOnce, new Promise<void>((resolve) => (timer = setTimeout(resolve, RELEASE_TIMEOUT_MS)))]).finally(() => clearTimeout(timer));
    },
  };

  return {
    slot,
    startOptions: { worker: slot, audit, registry, limiter, adminListener },
    serving(instance, h) {
      handlers = h;
      if (drainAsked) return h.drain(drainAsked);
      const addr = (a?: { address: string; port: number }) => (a ? `${a.address}:${a.port}` : undefined);
      void send({ kg: 'up', https: addr(instance.https)!, clientAuth: addr(instance.clientAuth), admin: addr(instance.admin) }).catch(() => undefined);
    },
    draining() {
      void send({ kg: 'draining' }).catch(() => undefined);
    },
    close: () => audit.close(),
  };
}

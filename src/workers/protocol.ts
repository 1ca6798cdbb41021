// The messages between the supervisor (cluster primary) and its workers, over the IPC channel
// node:cluster opens for each worker. Every keygate message carries `kg` (its kind), so that
// it never collides with the messages node:cluster and prom-client send on the same channel.
// The channel is private to processes of this one program, but a message is still checked
// for its shape before it is used: a malformed one is dropped, never a crash.

/** The part of a BucketPolicy the coordinator needs (sent with every lease request). */
export interface PolicyWire {
  name: string;
  ratePerMs: number;
  burst: number;
}

/** Worker → primary. */
export type WorkerMessage =
  /** Tokens for one bucket; `held` is what this worker still holds of earlier leases, `want` how many requests wait for one. */
  | { kg: 'lease'; id: number; key: string; policy: PolicyWire; held: number; want: number }
  | { kg: 'peek'; id: number; key: string; policy: PolicyWire }
  /** Whole audit lines, newline-terminated, in the order this worker wrote them. */
  | { kg: 'audit'; lines: string }
  /** The admin worker asks for the whole cluster's metrics (Prometheus text). */
  | { kg: 'metrics'; id: number }
  /** Listening (and with which addresses): this worker takes traffic. */
  | { kg: 'up'; https: string; clientAuth?: string; admin?: string }
  /** SIGTERM seen by the worker itself (not through the primary): it is draining. */
  | { kg: 'draining' };

/** Primary → worker. */
export type PrimaryMessage =
  | { kg: 'lease'; id: number; granted: number; tokens: number; atMs: number; expiresAtMs: number }
  | { kg: 'peek'; id: number; tokens: number; atMs: number }
  | { kg: 'metrics'; id: number; text?: string; error?: string }
  | { kg: 'reload'; trigger: string }
  | { kg: 'drain' }
  /** To the admin worker: whether every worker is ready (its /readyz answers this). */
  | { kg: 'cluster'; ready: boolean }
  /** To the admin worker, draining: every other worker has exited, the admin listener may close. */
  | { kg: 'release' };

type Kind<M, K> = Extract<M, { kg: K }>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const str = (v: unknown): v is string => typeof v === 'string';
const policyOk = (p: unknown): p is PolicyWire => isObject(p) && str(p.name) && num(p.ratePerMs) && p.ratePerMs > 0 && num(p.burst) && p.burst >= 1;

/** The message as a worker message of a known kind and shape, else undefined. */
export function workerMessage(m: unknown): WorkerMessage | undefined {
  if (!isObject(m) || !str(m.kg)) return undefined;
  switch (m.kg) {
    case 'lease':
      return num(m.id) && str(m.key) && policyOk(m.policy) && num(m.held) && m.held >= 0 && num(m.want) && m.want >= 0 ? (m as Kind<WorkerMessage, 'lease'>) : undefined;
    case 'peek':
      return num(m.id) && str(m.key) && policyOk(m.policy) ? (m as Kind<WorkerMessage, 'peek'>) : undefined;
    case 'audit':
      return str(m.lines) ? (m as Kind<WorkerMessage, 'audit'>) : undefined;
    case 'metrics':
      return num(m.id) ? (m as Kind<WorkerMessage, 'metrics'>) : undefined;
    case 'up':
      return str(m.https) ? (m as Kind<WorkerMessage, 'up'>) : undefined;
    case 'draining':
      return m as Kind<WorkerMessage, 'draining'>;
    default:
      return undefined;
  }
}

/** The message as a primary message of a known kind and shape, else undefined. */
export function primaryMessage(m: unknown): PrimaryMessage | undefined {
  if (!isObject(m) || !str(m.kg)) return undefined;
  switch (m.kg) {
    case 'lease':
      return num(m.id) && num(m.granted) && num(m.tokens) && num(m.atMs) && num(m.expiresAtMs) ? (m as Kind<PrimaryMessage, 'lease'>) : undefined;
    case 'peek':
      return num(m.id) && num(m.tokens) && num(m.atMs) ? (m as Kind<PrimaryMessage, 'peek'>) : undefined;
    case 'metrics':
      return num(m.id) ? (m as Kind<PrimaryMessage, 'metrics'>) : undefined;
    case 'reload':
      return str(m.trigger) ? (m as Kind<PrimaryMessage, 'reload'>) : undefined;
    case 'drain':
    case 'release':
      return m as PrimaryMessage;
    case 'cluster':
      return typeof m.ready === 'boolean' ? (m as Kind<PrimaryMessage, 'cluster'>) : undefined;
    default:
      return undefined;
  }
}

/** The environment a worker is started with: which slot it fills and what it serves. */
export const WORKER_ENV = {
  /** 1…N: stable across replacements (log lines and audit lines name it). */
  slot: 'KEYGATE_WORKER',
  /** How many workers the supervisor runs. */
  count: 'KEYGATE_WORKERS',
  /** "1" in the one worker that serves the admin listener (and so the admin API). */
  admin: 'KEYGATE_WORKER_ADMIN',
  /** The admin port a replacement binds when the config says 0 (so the port stays the same). */
  adminPort: 'KEYGATE_WORKER_ADMIN_PORT',
} as const;

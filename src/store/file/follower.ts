// How a running proxy follows its credential file: the folder is watched, and each change is
// read by a FollowCore — in a worker thread (follow-worker.js, next to this module in dist/),
// so that reading, comparing and validating 100,000 records never holds up a request; the
// event loop only receives the changed records. Where there is no compiled worker (the test
// runner runs the TypeScript sources) the core runs in this thread instead, the same code.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Problem } from '../../config/source.js';
import { watchFile } from '../../config/watch-file.js';
import type { DataProblem, StoreData, StoreFeed, StoreFollower } from '../types.js';
import { FollowCore, type FollowOutcome, type KeyedProblem } from './follow-core.js';
import { keyOf, LISTS, type ListName } from './layout.js';

export type Request = { op: 'read' } | { op: 'locate'; problems: KeyedProblem[] };
export type Reply = FollowOutcome | { kind: 'located'; problems: Problem[] };

interface Channel {
  ask(request: Request): Promise<Reply>;
  close(): void;
}

const WORKER = new URL('./follow-worker.js', import.meta.url);

/** Where the core runs: 'worker' when the compiled worker exists, else 'thread'. */
export function defaultReader(): 'worker' | 'thread' {
  return WORKER.protocol === 'file:' && existsSync(fileURLToPath(WORKER)) ? 'worker' : 'thread';
}

function threadChannel(file: string): Channel {
  const core = new FollowCore(file);
  return {
    ask: async (r) => (r.op === 'read' ? core.read() : { kind: 'located', problems: core.locate(r.problems) }),
    close: () => undefined,
  };
}

/**
 * One worker, started on the first request. It holds the process open only while a request is
 * out. If it dies (out of memory on a huge hand-written file), the requests out fail and the
 * next one starts a fresh worker, whose first answer is a snapshot.
 */
function workerChannel(file: string): Channel {
  let worker: Worker | undefined;
  let seq = 0;
  let closed = false;
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  const failAll = (err: Error) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const start = (): Worker => {
    const w = new Worker(WORKER, { workerData: { file } });
    w.unref();
    w.on('message', (m: { seq: number; reply: Reply }) => {
      const p = pending.get(m.seq);
      pending.delete(m.seq);
      if (pending.size === 0) w.unref();
      p?.resolve(m.reply);
    });
    w.on('error', (err) => failAll(err));
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
      failAll(new Error(`the credential file's reader thread stopped (exit code ${code})`));
    });
    return w;
  };
  return {
    ask: (request) => {
      if (closed) return Promise.reject(new Error('stopped'));
      const w = (worker ??= start());
      const id = ++seq;
      return new Promise<Reply>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        w.ref();
        w.postMessage({ seq: id, ...request });
      });
    },
    close: () => {
      closed = true;
      failAll(new Error('stopped'));
      void worker?.terminate();
      worker = undefined;
    },
  };
}

export interface FileFollower extends StoreFollower {
  /** Data problems of `data` (the version the proxy checked) positioned in the file last read. */
  locate(problems: readonly DataProblem[], data?: StoreData): Promise<Problem[]>;
}

export function followFile(file: string, feed: StoreFeed, reader: 'worker' | 'thread' = defaultReader()): FileFollower {
  const channel = reader === 'worker' ? workerChannel(file) : threadChannel(file);
  let revision = 0;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  const deliver = (out: Reply) => {
    if (stopped) return;
    if (out.kind === 'rejected') return feed.onRejected?.(out.problems);
    if (out.kind === 'snapshot') return feed.onSnapshot(out.data, ++revision);
    if (out.kind === 'changes') return feed.onChanges(out.changes, ++revision);
  };
  // At most one read runs and one waits: changes that come while one waits are seen by it.
  const read = (): Promise<void> => {
    if (queued) return queued;
    const next = running.then(async () => {
      queued = undefined;
      if (stopped) return;
      const out = await channel.ask({ op: 'read' }).catch((err: Error): Reply => ({ kind: 'rejected', problems: [{ file, line: 1, col: 1, message: `cannot read: ${err.message}` }] }));
      deliver(out);
    });
    queued = next;
    running = next;
    return next;
  };
  void read();
  const unwatch = watchFile(file, () => void read());
  return {
    sync: read,
    stop: () => {
      stopped = true;
      unwatch();
      channel.close();
    },
    locate: async (problems, data) => {
      const keyed = problems.map((p): KeyedProblem => {
        const [list, index, ...rest] = p.path;
        const record = data && LISTS.includes(list as ListName) && typeof index === 'number' ? (data[list as ListName] as object[])[index] : undefined;
        return record ? { list: list as ListName, key: keyOf(list as ListName, record), path: rest, message: p.message } : { path: p.path, message: p.message };
      });
      const out = await channel.ask({ op: 'locate', problems: keyed }).catch(() => undefined);
      return out?.kind === 'located' ? out.problems : problems.map((p) => ({ file, line: 1, col: 1, message: p.message }));
    },
  };
}

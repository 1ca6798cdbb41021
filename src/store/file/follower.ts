// How a running proxy follows its credential file: the folder is watched, and each change is
// read by a FollowCore — in a worker thread (follow-worker.js, next to this module in dist/),
// so that reading, comparing and validating 100,000 records never holds up a request; the
// event loop only receives the changed records. Where there is no compiled worker (the test
// runner runs the TypeScript sources) the core runs in this thread instead, the same code.
//
// The follower also keeps the records it delivered, by key in file order (the Redis store's
// Inventory, shared with what the feed was given), so that an update of this process runs on a
// copy-on-write draft of them and only the records it changed go to the reader, which writes
// them into the file (follow-core.ts write()). A write of one record in 100,000 then costs the
// event loop the draft (tens of milliseconds) instead of reading and rewriting 35 MB.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Problem } from '../../config/source.js';
import { watchFile } from '../../config/watch-file.js';
import { Draft } from '../draft.js';
import { Inventory } from '../inventory.js';
import type { DataProblem, StoreChange, StoreData, StoreFeed, StoreFollower } from '../types.js';
import { FollowCore, type FollowOutcome, type FsErrorFields, type KeyedProblem, type WriteOutcome } from './follow-core.js';
import { keyOf, LISTS, type ListName } from './layout.js';

export type Request = { op: 'read' } | { op: 'locate'; problems: KeyedProblem[] } | { op: 'write'; expected: string; changes: readonly StoreChange[] };
export type Reply = FollowOutcome | WriteOutcome | { kind: 'located'; problems: Problem[] };

/** Attempts of one update against a file that changed under it (a hand edit), before the whole-file rewrite. */
const WRITE_ATTEMPTS = 3;

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
    ask: async (r) => (r.op === 'read' ? core.read() : r.op === 'write' ? core.write(r.expected, r.changes) : { kind: 'located', problems: await core.locate(r.problems) }),
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
    // A small young generation: the reader's garbage is short-lived text and records, and what
    // V8 commits for a large one stays in RSS (Node 24: 171 -> 69 MB committed at 100,000).
    const w = new Worker(WORKER, { workerData: { file }, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
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
  /**
   * Runs `mutate` on a draft of the version followed, brought up to date with the file first,
   * and has the reader write what changed; the feed is told those changes at once. The caller
   * holds the file's lock. Undefined when this cannot be done by the changed lines alone (no
   * version followed, a version with hand-written lines, lists reordered, the file changed
   * under it again and again): the caller rewrites the whole file then (`mutate` may run again).
   */
  update<T>(mutate: (data: StoreData) => T): Promise<{ result: T } | undefined>;
}

/** The records of a delivered version by key, in file order, and whether the reader can write changes into it. */
interface Held {
  inv: Inventory;
  version: string;
  writable: boolean;
  /** False after a version was refused: the file is not the one held until a later read is taken. */
  current: boolean;
}

/**
 * The strings most records repeat, made one string each: a record that arrives from the
 * reader thread has its own copy of every string (a structured clone shares none), so 90,000
 * credentials held 90,000 copies of their account names and of "active". Values are unchanged.
 */
function shareStrings(data: StoreData): void {
  const names = new Map<string, string>();
  for (const a of data.accounts) names.set(a.name, a.name);
  const account = (r: { account: string }) => names.get(r.account) ?? r.account;
  for (const t of data.tokens) {
    if (Object.isFrozen(t)) return;
    t.account = account(t);
    t.status = t.status === 'active' ? 'active' : t.status === 'revoked' ? 'revoked' : t.status;
  }
  for (const c of data.certificates) {
    if (Object.isFrozen(c)) return;
    c.account = account(c);
    c.match = c.match === 'fingerprint' ? 'fingerprint' : c.match;
  }
}

function hold(data: StoreData, version: string, writable: boolean): Held {
  const inv = new Inventory(0, '', '');
  const puts = (kind: 'account' | 'token' | 'certificate', records: readonly object[]) => records.map((record) => ({ op: 'put', kind, record }) as StoreChange);
  inv.applyOwn([...puts('account', data.accounts), ...puts('token', data.tokens), ...puts('certificate', data.certificates)]);
  return { inv, version, writable, current: true };
}

/** A file-system error from the reader, with the fields store/file/fs-fault.ts reads. */
function fsError(fields: FsErrorFields): Error {
  return Object.assign(new Error(fields.message), fields);
}

export function followFile(file: string, feed: StoreFeed, reader: 'worker' | 'thread' = defaultReader()): FileFollower {
  const channel = reader === 'worker' ? workerChannel(file) : threadChannel(file);
  let revision = 0;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  let held: Held | undefined;
  const deliver = (out: Reply) => {
    if (stopped) return;
    if (out.kind === 'rejected') {
      if (held) held.current = false;
      return feed.onRejected?.(out.problems);
    }
    if (out.kind === 'snapshot') {
      shareStrings(out.data);
      held = hold(out.data, out.version, out.writable);
      return feed.onSnapshot(out.data, ++revision);
    }
    if (out.kind === 'changes') {
      if (held) {
        held.inv.applyOwn(out.changes);
        Object.assign(held, { version: out.version, writable: out.writable, current: true });
      }
      return feed.onChanges(out.changes, ++revision);
    }
  };
  /** Runs `fn` after the read or write in progress, before the next. */
  const exclusive = <R>(fn: () => Promise<R>): Promise<R> => {
    const next = running.then(fn);
    running = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
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
    update: async <T>(mutate: (data: StoreData) => T) => {
      for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        // The reader's write checks that the file is still the version held (its digest): a
        // change not yet delivered makes it stale, and the next attempt reads first. Reading
        // before the first attempt too cost a read and a digest of the whole file (~0.1 s at
        // 100,000 records) for the usual case, a file that did not change.
        if (attempt > 0 || !held?.current || !held.writable) await read();
        const out = await exclusive(async (): Promise<{ result: T } | 'stale' | undefined> => {
          const base = held;
          if (stopped || !base?.current || !base.writable) return undefined;
          const draft = await Draft.build(base.inv, () => new Promise<void>((r) => setImmediate(r)));
          let changes: StoreChange[];
          let result: T;
          try {
            result = mutate(draft.data);
            if (!draft.keepsOrder()) return undefined;
            changes = draft.changes().map((c) => c.change);
          } finally {
            draft.release();
          }
          const reply = await channel.ask({ op: 'write', expected: base.version, changes });
          if (reply.kind === 'stale') return 'stale';
          if (reply.kind === 'failed') throw fsError(reply.error);
          if (reply.kind === 'rejected') {
            deliver(reply);
            return { result };
          }
          if (reply.kind !== 'written') throw new Error(`unexpected answer from the credential file's reader: ${reply.kind}`);
          base.inv.applyOwn(changes);
          base.version = reply.version;
          if (!stopped) feed.onChanges(changes, ++revision);
          return { result };
        });
        if (out !== 'stale') return out;
      }
      return undefined;
    },
  };
}

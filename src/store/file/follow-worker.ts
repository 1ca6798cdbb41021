// The credential file's reader thread: one per following FileStore, started by follower.ts and
// terminated by its stop(). It answers one request at a time (the follower sends the next read
// or write only after the last was answered), so its memory is one version of the file and its lines.
//
// After a read or write of a large file (or one that was large before), garbage is collected at once: this thread is idle
// between changes, and V8 collects only when it allocates, so the previous version's parsed
// records and texts (~50 MB at 100,000 records) would otherwise stay in its RSS until the next
// change. `gc` comes from a fresh context once the flag is set: the flag exposes it to contexts
// made afterwards only, so no code already running sees a new global.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { FollowCore } from './follow-core.js';
import type { Reply, Request } from './follower.js';

const core = new FollowCore((workerData as { file: string }).file);
const port = parentPort!;
/** A read that parsed this many lines made its records among the lines kept (FollowCore.compact()). */
const COMPACT_AFTER = 10_000;
/** Files smaller than this leave little garbage: V8 collects it in its own time. */
const COLLECT_AFTER = 4 << 20;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (options?: object) => void;
// On V8 12+ (Node 24) the "last resort" collection also compacts and gives back the pages the
// first read left half empty. Node 20's V8 takes an options object for a young-generation
// collection only; its plain gc() is the full one, and a second one once the first one's pages
// are swept gives the emptied ones back (the reader's old generation after the first read at
// 100,000: 55 -> 31 MB; at once, while the request thread was busy starting, it gave none).
const LAST_RESORT = Number(process.versions.v8.split('.')[0]) >= 12;
const collect = () => {
  if (LAST_RESORT) return gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  gc();
  setTimeout(gc, 500);
};
/** The size of the file at the request before: a shrink from a large file leaves its garbage too. */
let before = 0;

port.on('message', (msg: Request & { seq: number }) => {
  const answer = async (): Promise<Reply> => (msg.op === 'read' ? await core.read() : msg.op === 'write' ? await core.write(msg.expected, msg.changes) : { kind: 'located', problems: await core.locate(msg.problems) });
  answer()
    .catch((err: unknown): Reply => ({ kind: 'rejected', problems: [{ file: core.file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }] }))
    .then((reply) => {
      port.postMessage({ seq: msg.seq, reply });
      if (msg.op === 'locate') return;
      if (core.lastParsed >= COMPACT_AFTER) core.compact();
      if (Math.max(before, core.lastSize) >= COLLECT_AFTER) setImmediate(collect);
      before = core.lastSize;
    });
});

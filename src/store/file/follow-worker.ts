// The credential file's reader thread: one per following FileStore, started by follower.ts and
// terminated by its stop(). It answers one request at a time (the follower sends the next read
// or write only after the last was answered), so its memory is one version of the file and its lines.
//
// After a read or write of a large file (or one that was large before), garbage is collected at once: this thread is idle
// between changes, and V8 collects only when it allocates, so the previous version's parsed
// records and texts (~50 MB at 100,000 records) would otherwise stay in its RSS until the next
// change (store/collect-garbage.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { FollowCore } from './follow-core.js';
import type { Reply, Request } from './follower.js';
import { collectGarbage } from '../collect-garbage.js';

const core = new FollowCore((workerData as { file: string }).file);
const port = parentPort!;
/** A read that parsed this many lines made its records among the lines kept (FollowCore.compact()). */
const COMPACT_AFTER = 10_000;
/** Files smaller than this leave little garbage: V8 collects it in its own time. */
const COLLECT_AFTER = 4 << 20;
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
      if (Math.max(before, core.lastSize) >= COLLECT_AFTER) setImmediate(() => collectGarbage('later'));
      before = core.lastSize;
    });
});

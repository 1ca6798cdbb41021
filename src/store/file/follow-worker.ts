// The credential file's reader thread: one per following FileStore, started by follower.ts and
// terminated by its stop(). It answers one request at a time (the follower sends the next read
// or write only after the last was answered), so its memory is one version of the file and its lines.
import { parentPort, workerData } from 'node:worker_threads';
import { FollowCore } from './follow-core.js';
import type { Reply, Request } from './follower.js';

const core = new FollowCore((workerData as { file: string }).file);
const port = parentPort!;

port.on('message', (msg: Request & { seq: number }) => {
  const answer = async (): Promise<Reply> => (msg.op === 'read' ? await core.read() : msg.op === 'write' ? await core.write(msg.expected, msg.changes) : { kind: 'located', problems: core.locate(msg.problems) });
  answer()
    .catch((err: unknown): Reply => ({ kind: 'rejected', problems: [{ file: core.file, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }] }))
    .then((reply) => port.postMessage({ seq: msg.seq, reply }));
});

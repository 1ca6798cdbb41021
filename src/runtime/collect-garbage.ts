// A full garbage collection, once, where a process just built something large and is about to
// sit mostly idle: a proxy that indexed 100,000 credentials at start-up. Building the index
// leaves ~50 MB of garbage (the snapshot's message from the reader thread, the change lists
// the index and the follower were built from), and V8 collects only when it next allocates
// enough; on Node 24 the young generation it grew to meanwhile (128 MB) also stays committed.
// The "last resort" collection frees both and gives the pages back (proxy RSS at start-up,
// 100,000 credentials: Node 24 445 -> 284 MB, Node 20 324 -> see bench/RESULTS.md). It stops the thread for ~0.1–0.3 s, so it is
// done only before the proxy answers its first request.
//
// `gc` comes from a fresh context once the flag is set (as in store/file/follow-worker.ts):
// the flag exposes it to contexts made afterwards only, so no code already running sees a new global.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
let collect: Collect | undefined;

/** Below this many records, what is left to collect is too small to be worth a pause. */
export const COLLECT_FROM_RECORDS = 20_000;

export function collectGarbage(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Collect;
  }
  // Node 20's V8 (11.3) takes an options object for a young-generation-only collection; its
  // plain gc() is the full one, and pages it empties are given back only once they are swept:
  // a second collection at once finishes that (measured: 344 -> 128 MB RSS, one gc() left 344).
  if (LAST_RESORT) collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else {
    collect();
    collect();
  }
}

/** V8 12 and later (Node 24) know the "last resort" flavour. */
const LAST_RESORT = Number(process.versions.v8.split('.')[0]) >= 12;

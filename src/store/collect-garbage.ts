// A full garbage collection, where a thread just built or dropped something large and is about
// to sit mostly idle: the request thread that indexed 100,000 credentials at start-up (or saw
// its inventory shrink), and the file store's reader thread after a large read or write. V8
// collects only when it next allocates enough, so that garbage (~50 MB at 100,000 records:
// the snapshot's message, the change lists, the previous version's parsed records) would stay
// in RSS; on Node 24 the young generation grown meanwhile (up to 128 MB) also stays committed.
// The "last resort" collection frees both and gives the pages back (proxy RSS at start-up,
// 100,000 credentials: Node 24 445 -> 284 MB; bench/RESULTS.md). It stops the thread for
// ~0.1–0.3 s, so callers do it only where nothing waits: before the first request, after a
// shrink, in the idle reader.
//
// `gc` comes from a fresh context once the flag is set: the flag exposes it to contexts made
// afterwards only, so no code already running sees a new global.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
let collect: Collect | undefined;

/** Below this many records, what is left to collect is too small to be worth a pause. */
export const COLLECT_FROM_RECORDS = 20_000;

/** V8 12 and later (Node 24) know the "last resort" flavour. */
const LAST_RESORT = Number(process.versions.v8.split('.')[0]) >= 12;

/**
 * One full collection that gives the emptied pages back. Node 20's V8 (11.3) takes an options
 * object for a young-generation-only collection; its plain gc() is the full one, and pages it
 * empties are given back only once they are swept: a second collection finishes that
 * (measured: 344 -> 128 MB RSS, one gc() left 344). `second: 'now'` runs it at once (the
 * request thread, before it serves); 'later' half a second on (the reader thread: at once,
 * while the request thread was busy starting, it gave none back — 55 -> 31 MB when later).
 */
export function collectGarbage(second: 'now' | 'later' = 'now'): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Collect;
  }
  const gc = collect;
  if (LAST_RESORT) return gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  gc();
  if (second === 'now') gc();
  else setTimeout(() => gc(), 500);
}

// Tools the workers-*.test.ts files share: the worker processes of a running supervisor (from
// its log lines and /proc), and the request lines of the audit file per worker.
import { readFileSync } from 'node:fs';
import type { ChildProxy } from '../helpers/harness.js';
import { readJsonLines } from '../helpers/harness.js';

/** Every `worker up` / `worker replaced` line so far: slot and pid, in order. */
export function workerStarts(proxy: ChildProxy): Array<{ worker: number; pid: number; msg: string }> {
  const out: Array<{ worker: number; pid: number; msg: string }> = [];
  for (const line of proxy.stderr().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as { msg?: string; worker?: number; pid?: number; role?: string };
      if (j.role === 'supervisor' && (j.msg === 'worker up' || j.msg === 'worker replaced') && typeof j.pid === 'number') out.push({ worker: j.worker!, pid: j.pid, msg: j.msg });
    } catch {
      // a line that is not JSON is not ours to read
    }
  }
  return out;
}

/** The pid serving each slot now (the latest start of each). */
export function workerPids(proxy: ChildProxy): Map<number, number> {
  const m = new Map<number, number>();
  for (const s of workerStarts(proxy)) m.set(s.worker, s.pid);
  return m;
}

/** Child pids of `pid` (Linux: /proc/<pid>/task/<pid>/children). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Request lines of the audit file, optionally for one path prefix. */
export function requestLines(auditFile: string, pathPrefix = ''): Array<Record<string, unknown>> {
  return readJsonLines(auditFile).filter((a) => a.event === 'request' && String(a.path).startsWith(pathPrefix));
}

// Child-process bookkeeping for the benchmark: every process we start is recorded here, so
// that a normal end, an error or Ctrl-C all stop exactly those processes (by pid) and nothing
// else. Also reads per-process CPU time from /proc, which is what the benchmark reports as
// "CPU µs per request".
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ); 100 on every mainstream Linux. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * utime+stime of a process in seconds. For a thread-group leader the kernel reports the sum
 * over all its threads, so the libuv pool, GC and compiler threads are included.
 */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** `pid` and its descendants (Linux /proc/<pid>/task/<tid>/children), bounded in count. */
export function processTree(pid, max = 256) {
  const out = [];
  const queue = [pid];
  while (queue.length && out.length < max) {
    const p = queue.shift();
    out.push(p);
    let tids = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) queue.push(Number(c));
      } catch {
        // the thread or process is gone
      }
    }
  }
  return out;
}

/**
 * utime+stime of a process and its live descendants (with `workers` > 1: the supervisor and
 * every worker). A worker that has ended is no longer counted, so compare only runs in which
 * none did.
 */
export function treeCpuSeconds(pid) {
  return processTree(pid).reduce((sum, p) => sum + (cpuSeconds(p) || 0), 0);
}

/** Peak and current RSS summed over a process and its descendants, in MiB. */
export function treeMemoryMiB(pid) {
  return processTree(pid).reduce(
    (acc, p) => {
      const m = memoryMiB(p);
      return { peak: acc.peak + (m.peak || 0), current: acc.current + (m.current || 0) };
    },
    { peak: 0, current: 0 },
  );
}

/** Peak and current resident set size of a process in MiB (VmHWM, VmRSS), or NaN. */
export function memoryMiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { peak: kb('VmHWM') / 1024, current: kb('VmRSS') / 1024 };
  } catch {
    return { peak: NaN, current: NaN };
  }
}

export const hasProcStat = () => existsSync('/proc/self/stat');

let tasksetPath;
/** Path of `taskset` when installed (util-linux), else null. */
export function taskset() {
  if (tasksetPath !== undefined) return tasksetPath;
  tasksetPath = null;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(`${dir}/taskset`)) {
      tasksetPath = `${dir}/taskset`;
      break;
    }
  }
  return tasksetPath;
}

/**
 * Starts a tracked child. With `cpus` (a taskset list such as "0" or "1") the command runs
 * pinned; taskset execs the command, so the child's pid is the command's own pid and
 * /proc/<pid>/stat measures it, not a wrapper.
 */
export function start(cmd, args, { cpus, env, stdio = ['pipe', 'pipe', 'pipe'], cwd } = {}) {
  const pinned = cpus && taskset();
  const child = spawn(pinned ? taskset() : cmd, pinned ? ['-c', cpus, cmd, ...args] : args, {
    stdio,
    env: { ...process.env, ...env },
    cwd,
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // An 'error' (e.g. ENOENT) would otherwise be thrown as an unhandled event.
  child.once('error', () => children.delete(child));
  return child;
}

export function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill('SIGTERM');
  } catch {
    return;
  }
  if (!(await waitExit(child, graceMs))) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
    await waitExit(child, 2000);
  }
}

export async function stopAll(graceMs = 5000) {
  await Promise.all([...children].map((c) => stop(c, graceMs)));
}

/** Last resort when the process is exiting anyway: synchronous SIGKILL to what is left. */
export function killAllNow() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Resolves with the first stdout/stderr line for which `pick` returns a value. */
export function waitForLine(child, streamName, pick, ms, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const stream = child[streamName];
    const onData = (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const v = pick(line);
        if (v !== undefined) {
          done();
          resolve(v);
          return;
        }
      }
    };
    const onExit = (code, signal) => {
      done();
      reject(new Error(`${what} exited (${signal ?? code}) before it was ready`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what} not ready within ${ms} ms`));
    }, ms);
    const done = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      child.off('exit', onExit);
    };
    stream.setEncoding('utf8');
    stream.on('data', onData);
    child.once('exit', onExit);
  });
}

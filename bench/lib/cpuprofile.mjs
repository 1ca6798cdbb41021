// What bench/profile-summary.mjs and bench/flamegraph.mjs both read out of a V8 .cpuprofile:
// self time per node, counted only over the seconds in which the process was busy. Each
// sample stands for the time until the next one; samples are sorted into one-second windows,
// and a window counts when it is past the first `skipS` seconds (start-up, module loading)
// and the process was at least `minBusy` busy (not idle) in it.
import { readFileSync } from 'node:fs';

/**
 * The profile in `file`, its nodes by id and parents, the ids of (idle), and self time in
 * microseconds per node id over the busy windows ((idle) nodes included: callers that show
 * only the work leave them out).
 */
export function busySelfTime(file, { minBusy, skipS }) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodeById = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const idleIds = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const samples = [];
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    samples.push({ id: profile.samples[i], sec: Math.floor((t - profile.startTime) / 1e6), dt: Math.max(0, profile.timeDeltas[i + 1] ?? 0) });
  }
  const windows = new Map();
  for (const s of samples) {
    const w = windows.get(s.sec) ?? { busy: 0, all: 0 };
    w.all += s.dt;
    if (!idleIds.has(s.id)) w.busy += s.dt;
    windows.set(s.sec, w);
  }
  const kept = new Set([...windows].filter(([sec, w]) => sec >= skipS && w.all > 0 && w.busy / w.all >= minBusy).map(([sec]) => sec));
  const selfUs = new Map();
  for (const s of samples) if (kept.has(s.sec)) selfUs.set(s.id, (selfUs.get(s.id) ?? 0) + s.dt);
  return { profile, nodeById, parentOf, idleIds, selfUs, seconds: windows.size, keptSeconds: kept.size };
}

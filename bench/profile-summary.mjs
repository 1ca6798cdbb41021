// Summarizes a V8 .cpuprofile (node --cpu-prof; `CPU_PROF=1 npm run bench` writes one for
// keygate) into self time per function and per owner: keygate's own code (dist/), each npm
// package, Node's internals, and the engine's (GC, program, idle).
// Only seconds in which the process was at least MIN_BUSY busy are counted (default 0.5), and
// the first SKIP seconds (default 2: start-up, module loading) are left out, so the figures
// describe the process under load.
// Usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP=30]   (env MIN_BUSY, SKIP)
import { busySelfTime } from './lib/cpuprofile.mjs';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const minBusy = Number(process.env.MIN_BUSY ?? 0.5);
const skipS = Number(process.env.SKIP ?? 2);
const { profile, nodeById, parentOf, selfUs, seconds, keptSeconds } = busySelfTime(file, { minBusy, skipS });

function owner(url, name) {
  if (!url) {
    if (name === '(garbage collector)') return 'v8: gc';
    if (name === '(idle)') return 'idle';
    if (name === '(program)') return 'v8: program (native, not attributed)';
    return 'native';
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return 'node: ' + url.slice(5).split('/')[0];
  if (url.includes('/dist/')) return 'keygate';
  return url;
}

const byFn = new Map();
const byOwner = new Map();
let total = 0;
let idle = 0;
for (const node of profile.nodes) {
  const us = selfUs.get(node.id) ?? 0;
  if (!us) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const o = owner(url, functionName);
  total += us;
  if (o === 'idle') {
    idle += us;
    continue;
  }
  const short = url.includes('/dist/') ? url.slice(url.lastIndexOf('/dist/') + 6) : url.includes('/node_modules/') ? url.slice(url.lastIndexOf('/node_modules/') + 14) : url;
  const key = `${functionName || '(anonymous)'}  ${short}${url ? ':' + (lineNumber + 1) : ''}`;
  byFn.set(key, { us: (byFn.get(key)?.us ?? 0) + us, owner: o });
  byOwner.set(o, (byOwner.get(o) ?? 0) + us);
}
const busy = total - idle;
const pct = (us) => ((us / busy) * 100).toFixed(1).padStart(5) + '%';
const out = [];
out.push(`profile: ${seconds} s, ${keptSeconds} s kept (busy >= ${minBusy * 100}%, after ${skipS} s): ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy; percentages are of busy time`);
out.push('');
out.push('self time by owner');
for (const [o, us] of [...byOwner].sort((a, b) => b[1] - a[1])) out.push(`  ${pct(us)}  ${o}`);
out.push('');
out.push(`top ${top} functions by self time`);
for (const [k, v] of [...byFn].sort((a, b) => b[1].us - a[1].us).slice(0, top)) out.push(`  ${pct(v.us)}  [${v.owner}] ${k}`);

// Inclusive time (self + callees) of keygate's own functions: what each stage costs in all.
const totalUs = new Map();
const inclusive = (node) => {
  let us = selfUs.get(node.id) ?? 0;
  for (const c of node.children ?? []) us += inclusive(nodeById.get(c));
  totalUs.set(node.id, us);
  return us;
};
inclusive(profile.nodes[0]);
const byKgFn = new Map();
for (const node of profile.nodes) {
  const { functionName, url, lineNumber } = node.callFrame;
  if (!url.includes('/dist/') || url.includes('/node_modules/')) continue;
  // A function that appears under itself (recursion) would count twice: keep the outermost.
  let p = parentOf.get(node.id);
  let nested = false;
  while (p !== undefined) {
    const pn = nodeById.get(p);
    if (pn.callFrame.url === url && pn.callFrame.functionName === functionName && pn.callFrame.lineNumber === lineNumber) { nested = true; break; }
    p = parentOf.get(p);
  }
  if (nested) continue;
  const key = `${functionName || '(anonymous)'}  ${url.slice(url.lastIndexOf('/dist/') + 6)}:${lineNumber + 1}`;
  byKgFn.set(key, (byKgFn.get(key) ?? 0) + totalUs.get(node.id));
}
out.push('');
out.push(`top ${top} keygate functions by inclusive time (self + everything they call)`);
for (const [k, us] of [...byKgFn].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${pct(us)}  ${k}`);
process.stdout.write(out.join('\n') + '\n');

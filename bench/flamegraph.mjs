// Turns a V8 .cpuprofile (node --cpu-prof) into a flame graph: a folded-stack text file (one
// line per distinct stack, "frame;frame;frame count", the format of Brendan Gregg's
// flamegraph.pl, speedscope and inferno) and a self-contained SVG drawn from it (no
// dependency, no script: hover a box for its title). Like profile-summary.mjs it keeps only
// the seconds in which the process was at least MIN_BUSY busy, after the first SKIP seconds,
// and leaves out (idle), so the graph shows the process under load. Counts are microseconds.
//
// Usage: node bench/flamegraph.mjs FILE.cpuprofile OUT_BASENAME [TITLE]
//        → OUT_BASENAME.folded.txt and OUT_BASENAME.svg   (env MIN_BUSY=0.5, SKIP=2, MIN_PCT=0.1)
import { writeFileSync } from 'node:fs';
import { busySelfTime } from './lib/cpuprofile.mjs';

const [file, outBase, title = file] = process.argv.slice(2);
if (!file || !outBase) {
  process.stderr.write('usage: node bench/flamegraph.mjs FILE.cpuprofile OUT_BASENAME [TITLE]\n');
  process.exit(2);
}
const minBusy = Number(process.env.MIN_BUSY ?? 0.5);
const skipS = Number(process.env.SKIP ?? 2);
// Boxes narrower than this share of the whole are dropped from the SVG (the text keeps all).
const minPct = Number(process.env.MIN_PCT ?? 0.1);
// Self time per node over the busy windows (bench/lib/cpuprofile.mjs), without (idle).
const { nodeById, parentOf, idleIds, selfUs, keptSeconds } = busySelfTime(file, { minBusy, skipS });
for (const id of idleIds) selfUs.delete(id);

/** A frame's label: function, then where it lives (dist/…, a package, node:…). */
function label(cf) {
  const name = cf.functionName || '(anonymous)';
  const url = cf.url;
  if (!url) return name;
  const short = url.includes('/node_modules/') ? url.slice(url.lastIndexOf('/node_modules/') + 14) : url.includes('/dist/') ? url.slice(url.lastIndexOf('/dist/') + 6) : url.replace(/^file:\/\/.*\//, '');
  return `${name} ${short}:${cf.lineNumber + 1}`.replaceAll(';', ',');
}

const folded = new Map();
for (const [id, us] of selfUs) {
  const stack = [];
  for (let n = id; n !== undefined; n = parentOf.get(n)) {
    const cf = nodeById.get(n).callFrame;
    if (cf.functionName === '(root)') break;
    stack.push(label(cf));
  }
  const key = stack.reverse().join(';');
  folded.set(key, (folded.get(key) ?? 0) + Math.round(us));
}
const lines = [...folded].filter(([, us]) => us > 0).sort((a, b) => (a[0] < b[0] ? -1 : 1));
writeFileSync(`${outBase}.folded.txt`, lines.map(([k, us]) => `${k} ${us}`).join('\n') + '\n');

// ---- SVG: a tree of frames from the folded stacks, children sorted by name (flamegraph.pl) ----
const root = { name: 'all', value: 0, children: new Map() };
for (const [k, us] of lines) {
  root.value += us;
  let n = root;
  for (const f of k.split(';')) {
    let c = n.children.get(f);
    if (!c) n.children.set(f, (c = { name: f, value: 0, children: new Map() }));
    c.value += us;
    n = c;
  }
}
const W = 1200;
const ROW = 16;
const minUs = (root.value * minPct) / 100;
let depthMax = 0;
const boxes = [];
(function layout(n, x, depth) {
  depthMax = Math.max(depthMax, depth);
  boxes.push({ n, x, depth });
  let cx = x;
  for (const c of [...n.children.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (c.value >= minUs) layout(c, cx, depth + 1);
    cx += c.value;
  }
})(root, 0, 0);
const H = (depthMax + 1) * ROW + 40;
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** Warm colours for JavaScript, blue for native and the engine, green for keygate's own code. */
function colour(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  const v = h % 55;
  if (name.includes(' keygate/') || /\s(cli|forward|pipeline|observe|identify|transport|request|ratelimit|authorize|listener|runtime|matching|store|vocabulary)\//.test(name)) return `rgb(${60 + v},${170 + (v % 40)},${70 + v})`;
  if (!name.includes(':') || name.startsWith('(')) return `rgb(${90 + v},${140 + v},${210})`;
  return `rgb(${205 + (v % 50)},${80 + v * 2},${40 + v})`;
}
const scale = W / Math.max(1, root.value);
const out = [];
out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="monospace" font-size="11">`);
out.push(`<rect width="100%" height="100%" fill="#fdfdf6"/>`);
out.push(`<text x="6" y="16" font-size="13">${esc(title)} — ${(root.value / 1e6).toFixed(2)} s busy CPU sampled; boxes under ${minPct}% hidden</text>`);
for (const { n, x, depth } of boxes) {
  const w = n.value * scale;
  const y = H - (depth + 1) * ROW - 4;
  const pct = ((n.value / root.value) * 100).toFixed(2);
  const text = w > 40 ? esc(n.name.slice(0, Math.floor((w - 4) / 6.6))) : '';
  out.push(`<g><title>${esc(n.name)} (${pct}%, ${(n.value / 1e3).toFixed(0)} ms)</title><rect x="${(x * scale).toFixed(1)}" y="${y}" width="${Math.max(0.5, w - 0.5).toFixed(1)}" height="${ROW - 1}" fill="${colour(n.name)}"/>${text ? `<text x="${(x * scale + 3).toFixed(1)}" y="${y + 11}">${text}</text>` : ''}</g>`);
}
out.push('</svg>');
writeFileSync(`${outBase}.svg`, out.join('\n') + '\n');
process.stdout.write(`${outBase}.folded.txt (${lines.length} stacks), ${outBase}.svg (${boxes.length} boxes), ${(root.value / 1e6).toFixed(2)} s busy in ${keptSeconds} kept seconds\n`);

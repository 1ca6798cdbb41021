// Compares two folded-stack files (bench/flamegraph.mjs) per request: self time by leaf frame,
// in µs per request, sorted by how much more B spends than A.
// Usage: node bench/folded-diff.mjs A.folded.txt REQUESTS_A B.folded.txt REQUESTS_B
import { readFileSync } from 'node:fs';
const [fa, na, fb, nb] = process.argv.slice(2);
function load(f) { const m = new Map(); let tot = 0; for (const l of readFileSync(f, 'utf8').trim().split('\n')) { const i = l.lastIndexOf(' '); const us = +l.slice(i + 1); tot += us; m.set(l.slice(0, i), us); } return { m, tot }; }
const A = load(fa), B = load(fb);
const leaf = (s) => s.slice(s.lastIndexOf(';') + 1).replace(/:\d+$/, '');
function byLeaf(X, n) { const r = new Map(); for (const [s, us] of X.m) r.set(leaf(s), (r.get(leaf(s)) ?? 0) + us / n); return r; }
const la = byLeaf(A, +na), lb = byLeaf(B, +nb);
console.log('total µs/req', (A.tot / na).toFixed(1), (B.tot / nb).toFixed(1));
const keys = new Set([...la.keys(), ...lb.keys()]);
const rows = [...keys].map((k) => [k, la.get(k) ?? 0, lb.get(k) ?? 0]).sort((x, y) => (y[2] - y[1]) - (x[2] - x[1]));
for (const [k, a, b] of rows.slice(0, 40)) console.log((b - a).toFixed(2).padStart(7), a.toFixed(2).padStart(7), b.toFixed(2).padStart(7), k);

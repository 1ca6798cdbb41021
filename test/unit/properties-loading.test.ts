// Properties of loading keygate.yaml and the credential file (issue 8): whatever the files hold
// — a valid document with any value anywhere, a document cut at any byte, stray bytes in it,
// no YAML at all — `keygate check`'s build never throws, and every problem it reports has a
// position (file:line:col, both from 1). Thousands of inputs through the very function the
// command runs (runtime/build.ts buildAll), and a few through the built binary itself.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { formatProblem, type Problem } from '../../src/config/source.js';
import { UpstreamPools } from '../../src/forward/upstream-pools.js';
import { buildAll } from '../../src/runtime/build.js';
import { FileStore, serializeStore } from '../../src/store/file/file-store.js';
import type { StoreData } from '../../src/store/types.js';
import { runCli } from '../helpers/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-prop-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BASE_CONFIG = {
  environment: 'prod',
  listen: { host: '127.0.0.1', port: 0, tls: { cert: 'server.crt', key: 'server.key' }, limits: { headersTimeout: '10s', requestTimeout: '60s' }, headersWithUnderscores: 'drop' },
  admin: { enabled: false },
  routes: [
    { pathPrefix: '/healthz', upstream: 'http://127.0.0.1:1', public: true },
    { pathPrefix: '/', upstream: 'http://127.0.0.1:1', timeout: '30s', allowOverrideHeaders: ['x-http-method-override'] },
  ],
  scopes: { 'items:read': ['GET /api/items/**'] },
  roles: { viewer: ['items:read'] },
  policies: { default: { rate: '10/s', burst: 20 } },
  store: { file: 'credentials.yaml' },
  audit: { output: 'stdout' },
};

const BASE_STORE: StoreData = {
  version: 1,
  accounts: [{ name: 'svc', description: '', owner: '', endDate: '2030-01-31', roles: ['viewer'], scopes: [], policy: null, disabled: false, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' }],
  tokens: [
    { id: 'tok_aaaaaaaaaaaaaa', account: 'svc', label: '', hash: 'a'.repeat(64), environment: 'prod', scopes: null, policy: null, status: 'active', createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2030-01-31T23:59:59.999Z', revokedAt: null, revokeReason: null, rotatedFrom: null, rotatedTo: null },
  ],
  certificates: [],
};

/** Values a hand edit (or a fuzzer) puts where another was expected. */
const oddValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 65536, 1.5, '', 'x', '10x', '0s', '25d', '2027-02-30', '2027-13-01', '/', '*', '${UNSET_VAR}', '../../etc/passwd'),
  fc.string({ maxLength: 10 }),
  fc.integer(),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
);

/** The paths of every value in `root`, objects and arrays included. */
function pathsOf(root: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (root === null || typeof root !== 'object') return [prefix];
  const entries = Array.isArray(root) ? root.map((v, i) => [i, v] as const) : Object.entries(root);
  return [prefix, ...entries.flatMap(([k, v]) => pathsOf(v, [...prefix, k]))];
}

function setAt(root: unknown, path: ReadonlyArray<string | number>, value: unknown): unknown {
  if (path.length === 0) return value;
  // An earlier edit may have put a scalar where this path runs on: it becomes a map again.
  const node = root !== null && typeof root === 'object' ? (root as Record<string | number, unknown>) : {};
  const copy = (Array.isArray(node) ? [...(node as unknown[])] : { ...node }) as Record<string | number, unknown>;
  copy[path[0]!] = setAt(node[path[0]!], path.slice(1), value);
  return copy;
}

/** A document as an operator's mistakes and a failing disk leave it. */
function documents(base: object): fc.Arbitrary<string> {
  const paths = pathsOf(base);
  const edited = fc.array(fc.tuple(fc.constantFrom(...paths), oddValue, fc.boolean()), { minLength: 1, maxLength: 4 }).map((edits) => {
    let doc: unknown = base;
    for (const [path, value, extraKey] of edits) doc = extraKey && path.length ? setAt(doc, [...path.slice(0, -1), 'unknownKey'], value) : setAt(doc, path, value);
    return stringify(doc);
  });
  const text = stringify(base);
  const cut = fc.nat({ max: text.length }).map((at) => text.slice(0, at));
  const junk = fc.tuple(fc.nat({ max: text.length }), fc.constantFrom('\t', ': ', '- ', '"', "'", '{', '[', '&a', '*a', '!!binary', '\u0000', '%', '\n  x', '---\n', '? ', '|')).map(([at, s]) => text.slice(0, at) + s + text.slice(at));
  return fc.oneof(edited, cut, junk, fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }));
}

function expectPositioned(problems: readonly Problem[]): void {
  for (const p of problems) {
    expect(p.line, formatProblem(p)).toBeGreaterThanOrEqual(1);
    expect(p.col, formatProblem(p)).toBeGreaterThanOrEqual(1);
    expect(formatProblem(p)).toMatch(/^[^\n]+:\d+:\d+: \S/);
  }
}

describe('keygate.yaml, whatever it holds', () => {
  it('never makes the build throw, and every problem is file:line:col', async () => {
    const file = join(dir, 'keygate.yaml');
    const pools = new UpstreamPools();
    let refused = 0;
    try {
      await fc.assert(
        fc.asyncProperty(documents(BASE_CONFIG), async (text) => {
          writeFileSync(file, text);
          const { built, store, problems } = await buildAll(file, pools, {});
          await store?.close();
          expect(built).toBeUndefined(); // no TLS files here: nothing can be whole
          expect(problems.length).toBeGreaterThan(0);
          expectPositioned(problems);
          if (problems.some((p) => !/server\.(crt|key)|credentials/.test(p.message))) refused++;
        }),
        { numRuns: 2_000 },
      );
    } finally {
      await pools.closeAll(true);
    }
    // The generator reaches the schema, not only the missing TLS files.
    expect(refused).toBeGreaterThan(500);
  }, 60_000);
});

describe('the credential file, whatever it holds', () => {
  it('never makes the load throw, and every problem is file:line:col', async () => {
    const file = join(dir, 'credentials.yaml');
    const store = new FileStore(file);
    const whole = serializeStore(BASE_STORE);
    // Cut anywhere before the end line is whole (losing only the final newline loses nothing).
    const cuts = fc.nat({ max: whole.length - 2 }).map((at) => whole.slice(0, at));
    let cutsRefused = 0;
    let cutsSeen = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(documents(BASE_STORE), cuts.map((t) => ({ cut: t }))), async (doc) => {
        const text = typeof doc === 'string' ? doc : doc.cut;
        writeFileSync(file, text);
        const { data, problems } = await store.load();
        expectPositioned(problems);
        expect(data === undefined).toBe(problems.length > 0);
        if (typeof doc !== 'string' && text.trim() !== '') {
          cutsSeen++;
          if (!data) cutsRefused++;
        }
      }),
      { numRuns: 2_000 },
    );
    // A file keygate wrote, cut anywhere (but to nothing), is never taken as a store.
    expect(cutsRefused).toBe(cutsSeen);
    expect(cutsSeen).toBeGreaterThan(100);
  }, 60_000);
});

describe('keygate check (the binary), on a few of them', () => {
  it('exits 1 with file:line:col lines and a count, never a stack trace', async () => {
    const samples = fc.sample(documents(BASE_CONFIG), { numRuns: 6, seed: 42 });
    const file = join(dir, 'cli.yaml');
    for (const text of samples) {
      writeFileSync(file, text);
      const r = await runCli(['check', '-c', file]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).not.toMatch(/\n\s+at |node:internal/);
      const lines = r.stderr.trim().split('\n');
      expect(lines.slice(0, -1).every((l) => /^[^\n]+:\d+:\d+: \S/.test(l)), r.stderr).toBe(true);
      expect(lines.at(-1)).toMatch(/problems? found/);
    }
  }, 60_000);
});

// The source tree keeps the shape docs/architecture.md describes: folders in the order a
// request meets them, arrows pointing one way. Every import in src/ is checked against the
// table below; a back-edge (a stage importing another stage, a lower layer importing the
// pipeline, the admin API reaching into the instance…) fails here, with the file and the
// import named. The table is itself checked to have no cycle. And no module grows past ~300
// lines without saying in its header why it is one module.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(new URL('../../src', import.meta.url).pathname);

/** Folder (or top-level file) → what it may import, besides itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  // the shared words and the leaves
  errors: [],
  matching: [],
  config: ['errors'],
  store: ['config', 'errors', 'matching'],
  vocabulary: ['errors', 'store'],
  observe: ['vocabulary'],
  transport: ['vocabulary', 'errors'],
  // the stages: pure decisions over the context; none imports another
  // request reads the token format (store/token-format.ts) to keep tokens out of the query
  // string and to find one under another Authorization scheme: the format is the store's.
  request: ['vocabulary', 'errors', 'matching', 'config', 'store'],
  identify: ['vocabulary', 'errors', 'store'],
  ratelimit: ['vocabulary', 'errors', 'store', 'config'],
  authorize: ['vocabulary', 'errors', 'matching', 'config'],
  forward: ['vocabulary', 'errors', 'transport', 'store'],
  // composing the stages into chains, and running them
  pipeline: ['request', 'identify', 'ratelimit', 'authorize', 'forward', 'vocabulary', 'errors', 'observe', 'transport', 'store'],
  listener: ['transport', 'vocabulary', 'errors', 'observe', 'config'],
  runtime: ['pipeline', 'request', 'identify', 'ratelimit', 'authorize', 'forward', 'listener', 'store', 'config', 'vocabulary', 'errors', 'matching', 'observe'],
  admin: ['runtime', 'pipeline', 'identify', 'ratelimit', 'request', 'authorize', 'listener', 'store', 'observe', 'errors', 'vocabulary', 'config', 'transport'],
  pki: ['errors', 'config', 'store', 'listener'],
  dev: [],
  // the process: composition, the shell, the command line
  instance: ['admin', 'runtime', 'pipeline', 'identify', 'ratelimit', 'request', 'authorize', 'forward', 'listener', 'store', 'observe', 'errors', 'vocabulary', 'config', 'transport', 'matching'],
  // workers > 1: the supervisor (cluster primary) and what each worker passes to its instance;
  // above instance (a worker runs one), below the shell that starts either
  workers: ['instance', 'ratelimit', 'observe', 'config', 'vocabulary'],
  main: ['instance', 'workers', 'config', 'observe', 'errors'],
  cli: ['main', 'instance', 'admin', 'runtime', 'pipeline', 'identify', 'ratelimit', 'request', 'authorize', 'forward', 'listener', 'store', 'observe', 'errors', 'vocabulary', 'config', 'transport', 'matching', 'pki', 'dev'],
};

const STAGES = ['request', 'identify', 'ratelimit', 'authorize', 'forward'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The unit a file belongs to: its top folder under src/, or its own name for src/main.ts etc. */
function unitOf(file: string): string {
  const rel = relative(SRC, file).split(sep);
  return rel.length === 1 ? rel[0]!.replace(/\.ts$/, '') : rel[0]!;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g;

function edges(): Array<{ file: string; from: string; to: string; spec: string; target: string }> {
  const out: Array<{ file: string; from: string; to: string; spec: string; target: string }> = [];
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.startsWith('.')) continue;
      const target = resolve(file, '..', spec.replace(/\.js$/, '.ts'));
      out.push({ file: relative(SRC, file), from: unitOf(file), to: unitOf(target), spec, target: relative(SRC, target) });
    }
  }
  return out;
}

describe('dependency direction', () => {
  it('every folder of src/ is in the table', () => {
    const units = new Set(sources(SRC).map(unitOf));
    expect([...units].filter((u) => !(u in MAY_IMPORT))).toEqual([]);
  });

  it('no import runs against the table (no back-edge)', () => {
    const bad = edges()
      .filter((e) => e.from !== e.to && !MAY_IMPORT[e.from]!.includes(e.to))
      .map((e) => `${e.file}: ${e.from} → ${e.to} (${e.spec})`);
    expect(bad).toEqual([]);
  });

  it('no stage imports another stage', () => {
    for (const s of STAGES) expect(MAY_IMPORT[s]!.filter((t) => STAGES.includes(t)), s).toEqual([]);
  });

  it('the table itself has no cycle', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (u: string, path: string[]): void => {
      if (state.get(u) === 'done') return;
      expect(state.get(u), `cycle: ${[...path, u].join(' → ')}`).not.toBe('visiting');
      state.set(u, 'visiting');
      for (const t of MAY_IMPORT[u] ?? []) visit(t, [...path, u]);
      state.set(u, 'done');
    };
    for (const u of Object.keys(MAY_IMPORT)) visit(u, []);
  });

  it('the check itself sees imports (a test that cannot fail is a defect)', () => {
    const all = edges();
    expect(all.length).toBeGreaterThan(200);
    expect(all.some((e) => e.from === 'pipeline' && e.to === 'identify')).toBe(true);
    expect(all.some((e) => e.spec.includes('type ') || e.from === 'vocabulary')).toBe(true);
  });
});

describe('store backends', () => {
  // The file store follows and drafts with what the Redis store built first (the inventory of
  // frozen records, the copy-on-write draft, the fast record check): shared, they live in
  // store/ itself, so that neither backend depends on the other.
  it('store/file and store/redis import nothing of each other', () => {
    const backend = (f: string) => /^store[\\/](file|redis)[\\/]/.exec(f)?.[1];
    const bad = edges()
      .filter((e) => backend(e.file) !== undefined && backend(e.target) !== undefined && backend(e.file) !== backend(e.target))
      .map((e) => `${e.file} → ${e.target}`);
    expect(bad).toEqual([]);
    expect(edges().some((e) => e.file.startsWith(`store${sep}file${sep}`) && e.target === join('store', 'draft.ts'))).toBe(true);
  });
});

describe('module size', () => {
  it('no module over ~300 lines without a reason in its header ("One module because …")', () => {
    const long = sources(SRC)
      .map((f) => ({ file: relative(SRC, f), text: readFileSync(f, 'utf8') }))
      .filter(({ text }) => text.split('\n').length > 320)
      .filter(({ text }) => !/^\/\/.*One module because/m.test(text.split('\n').slice(0, 30).join('\n')))
      .map(({ file }) => file);
    expect(long).toEqual([]);
  });
});

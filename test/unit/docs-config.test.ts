// docs/configuration.md must not fall behind src/config/schema.ts: every key path of the
// schema appears in the reference, every leaf has a table row whose default is the schema's
// default, and every row names a key that exists. Walks the zod (v4) schema through its
// definitions (`_zod.def`), so a key added to the schema fails here until it is documented.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';
import { formatDuration } from '../../src/config/units.js';

const DOC = readFileSync(fileURLToPath(new URL('../../docs/configuration.md', import.meta.url)), 'utf8');

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

const WRAPPERS = new Set(['default', 'prefault', 'nullable', 'optional', 'readonly', 'catch', 'nonoptional']);

/** Strips wrappers (defaults, nullable, transforms, preprocessing); returns the core schema and the wrappers seen. */
function unwrap(schema: z.ZodType): { core: z.ZodType; wrappers: string[] } {
  const wrappers: string[] = [];
  let s = schema;
  for (let depth = 0; depth < 20; depth++) {
    const d = defOf(s);
    if (WRAPPERS.has(d.type) && d.innerType) {
      wrappers.push(d.type);
      s = d.innerType;
    } else if (d.type === 'pipe' && d.in && d.out) {
      wrappers.push('pipe');
      // z.preprocess(fn, T) is pipe(transform, T); x.transform(fn) is pipe(x, transform).
      s = defOf(d.in).type === 'transform' ? d.out : d.in;
    } else {
      return { core: s, wrappers };
    }
  }
  throw new Error('schema nesting too deep');
}

interface KeyInfo {
  /** Doc form: `listen.tls.cert`, `routes[].timeout`, `policies.<name>.rate`. */
  path: string;
  /** Where to read the parsed value in the probe config. */
  probe: Array<string | number>;
  /** object: a section; leaf: a value; entry: the value of a map under a name the operator picks. */
  kind: 'object' | 'leaf' | 'entry';
  required: boolean;
  optional: boolean;
}

const PROBE_NAME = 'probe';

function walk(schema: z.ZodType, path: string, probe: Array<string | number>, out: KeyInfo[]): void {
  const { core } = unwrap(schema);
  const d = defOf(core);
  if (d.type === 'object' && d.shape) {
    for (const [key, child] of Object.entries(d.shape)) {
      const { core: c, wrappers } = unwrap(child);
      const childPath = path ? `${path}.${key}` : key;
      const info: KeyInfo = {
        path: childPath,
        probe: [...probe, key],
        kind: defOf(c).type === 'object' ? 'object' : 'leaf',
        required: !wrappers.some((w) => w === 'default' || w === 'prefault' || w === 'optional'),
        optional: wrappers.includes('optional'),
      };
      out.push(info);
      walk(child, childPath, info.probe, out);
    }
  } else if (d.type === 'array' && d.element) {
    walk(d.element, `${path}[]`, [...probe, 0], out);
  } else if (d.type === 'record' && d.valueType) {
    const entry = `${path}.<name>`;
    out.push({ path: entry, probe: [...probe, PROBE_NAME], kind: 'entry', required: false, optional: false });
    walk(d.valueType, entry, [...probe, PROBE_NAME], out);
  } else if (d.type === 'union' && d.options) {
    for (const o of d.options) if (defOf(unwrap(o).core).type === 'object') walk(o, path, probe, out);
  }
}

const keys: KeyInfo[] = [];
walk(configSchema as unknown as z.ZodType, '', [], keys);

/** The smallest valid config: top-level defaults show here. */
const minimalConfig = {
  listen: { tls: { cert: 'server.crt', key: 'server.key' } },
  routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:8080' }],
};
/** The same, with every optional section opened, so the defaults inside them show. */
const probeConfig = {
  listen: { tls: { cert: 'server.crt', key: 'server.key' } },
  admin: { tls: { cert: 'admin.crt', key: 'admin.key' } },
  routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:8080' }],
  scopes: { [PROBE_NAME]: ['GET /x'] },
  roles: { [PROBE_NAME]: [PROBE_NAME] },
  policies: { [PROBE_NAME]: { rate: '1/s' } },
  store: { redis: { url: 'rediss://127.0.0.1:6379', tls: {} } },
};
const minimal = configSchema.parse(minimalConfig) as unknown;
const probed = configSchema.parse(probeConfig) as unknown;

function get(root: unknown, path: Array<string | number>): unknown {
  let v: unknown = root;
  for (const seg of path) v = v === null || v === undefined ? undefined : (v as Record<string | number, unknown>)[seg];
  return v;
}

/** How a parsed default may be written in the doc: durations as the operator writes them. */
function renderings(v: unknown): string[] {
  if (v === null) return ['null'];
  if (typeof v === 'number') {
    // Durations are parsed to milliseconds: accept any exact spelling (60000 = 60s = 1m).
    const units: Array<[string, number]> = [['ms', 1], ['s', 1_000], ['m', 60_000], ['h', 3_600_000], ['d', 86_400_000]];
    return [String(v), formatDuration(v), ...units.filter(([, size]) => v > 0 && v % size === 0).map(([u, size]) => `${v / size}${u}`)];
  }
  if (typeof v === 'string' || typeof v === 'boolean') return [String(v)];
  if (Array.isArray(v)) return [JSON.stringify(v)];
  if (typeof v === 'object' && v !== null && 'text' in v) return [String((v as { text: unknown }).text)]; // a rate
  if (typeof v === 'object' && v !== null && Object.keys(v).length === 0) return ['{}'];
  return [JSON.stringify(v)];
}

/** Reference rows: `| `key` | type | default | meaning |`. */
function referenceRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of DOC.split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    const cells = m[2]!.split(/(?<!\\)\|/).map((c) => c.trim());
    if (cells.length >= 3) rows.set(m[1]!, cells);
  }
  return rows;
}

const rows = referenceRows();
const schemaPaths = new Set(keys.map((k) => k.path));

describe('docs/configuration.md', () => {
  it('walks the whole schema (sanity check of the walker itself)', () => {
    expect(keys.length).toBeGreaterThan(50);
    for (const p of ['environment', 'listen.tls.cert', 'listen.clientAuth.port', 'routes[].timeout', 'policies.<name>.burst', 'store.redis.failMode', 'log.level']) {
      expect(schemaPaths, p).toContain(p);
    }
  });

  it('mentions every key path of the schema', () => {
    const missing = keys.filter((k) => !DOC.includes('`' + k.path + '`')).map((k) => k.path);
    expect(missing, `not documented in docs/configuration.md: ${missing.join(', ')}`).toEqual([]);
  });

  it('has a reference row for every leaf key', () => {
    const missing = keys.filter((k) => k.kind !== 'object' && !rows.has(k.path) && !keys.some((c) => c.path.startsWith(k.path + '.'))).map((k) => k.path);
    expect(missing, `no "| \`key\` | type | default | meaning |" row for: ${missing.join(', ')}`).toEqual([]);
  });

  it('states each leaf default as the schema applies it', () => {
    const wrong: string[] = [];
    for (const k of keys) {
      if (k.kind !== 'leaf') continue;
      const cells = rows.get(k.path);
      if (!cells) continue;
      const defaultCell = cells[1]!;
      const supplied = get(probeConfig, k.probe) !== undefined;
      // A required key inside a section with a default of its own (authFailures.rate) has
      // that section's value as its effective default.
      const filledByParent = k.required && !supplied && get(probed, k.probe) !== undefined;
      if (k.required && !filledByParent) {
        if (!/required/.test(defaultCell)) wrong.push(`${k.path}: has no default, the row should say "required" (says: ${defaultCell})`);
        continue;
      }
      const v = get(supplied ? minimal : probed, k.probe);
      if (k.optional && v === undefined) continue; // computed when absent (e.g. burst); the row explains
      const expected = renderings(v);
      if (!expected.some((e) => defaultCell.includes('`' + e + '`'))) wrong.push(`${k.path}: default is ${expected.map((e) => '`' + e + '`').join(' or ')}, the row says: ${defaultCell}`);
    }
    expect(wrong).toEqual([]);
  });

  it('documents no key the schema does not have', () => {
    // Rows of the reference tables only: their first cell is a dotted key path.
    const keyLike = /^[a-z][A-Za-z]*(?:\[\])?(?:\.(?:<name>|[a-z][A-Za-z]*)(?:\[\])?)*$/;
    const unknown = [...rows.keys()].filter((k) => keyLike.test(k) && rows.get(k)!.length === 3 && !schemaPaths.has(k));
    expect(unknown, `documented but not in the schema: ${unknown.join(', ')}`).toEqual([]);
  });
});

// docs/openapi.yaml and docs/admin-api.md stay in step with the admin API's router: every
// served path and method is described and nothing else is, every $ref resolves, every
// operation documents each answer the router can give it, every status the admin code can
// answer is documented, and every error code the docs name exists. (`npm run lint:openapi`,
// part of `npm test`, checks the file against the OpenAPI schema with Redocly.)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { adminRouteTable } from '../../src/admin/api.js';
import { ERRORS } from '../../src/errors/catalog.js';

const docs = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');
const spec = parse(docs('openapi.yaml')) as { openapi: string; paths: Record<string, Record<string, any>>; components: Record<string, Record<string, unknown>> };
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
const operations = () =>
  Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((k) => HTTP_METHODS.includes(k))
      .map((method) => ({ path, method, op: item[method] as { responses: Record<string, unknown>; requestBody?: unknown } })),
  );

describe('docs/openapi.yaml', () => {
  it('is OpenAPI 3.1', () => {
    expect(spec.openapi).toMatch(/^3\.1\./);
  });

  it('describes exactly the paths and methods the router serves', () => {
    const served = adminRouteTable().flatMap((r) => r.methods.map((m) => `${m} ${r.path}`)).sort();
    const documented = Object.entries(spec.paths)
      .flatMap(([path, item]) => Object.keys(item).filter((k) => HTTP_METHODS.includes(k)).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(served);
  });

  it('documents on each operation every answer the router can give it', () => {
    for (const { path, method, op } of operations()) {
      // Any call: a bad query parameter or percent-encoding (400), the admin credential (401,
      // 403, 429 after repeated failures), the store (503).
      const want = ['400', '401', '403', '429', '503'];
      if (path.includes('{')) want.push('404'); // the named account, token or binding
      if (['post', 'patch', 'delete'].includes(method)) want.push('405'); // a read-only admin API
      if (op.requestBody) want.push('413'); // bodies are bounded
      expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(want));
    }
  });

  it('documents every status the admin API code can answer, and only statuses it can', () => {
    // Every KG_ERR code the admin modules name, and the store layer whose faults they pass on
    // (lifecycle operations, locks, a broken file), plus the 401 family of the credential lookup.
    const dirs = ['admin', 'store', 'store/file', 'store/redis'];
    const source = dirs
      .flatMap((d) => {
        const dir = new URL(`../../src/${d}/`, import.meta.url);
        return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(new URL(f, dir), 'utf8')) : [];
      })
      .join('\n');
    const codes = new Set([...source.matchAll(/'(KG_ERR_[A-Z_]+)'/g)].map((m) => m[1] as keyof typeof ERRORS));
    expect(codes.size).toBeGreaterThan(5);
    const answerable = new Set(['200', '201', '401', ...[...codes].map((c) => String(ERRORS[c].status))]);
    const documented = new Set(operations().flatMap(({ op }) => Object.keys(op.responses)));
    expect([...documented].sort()).toEqual([...answerable].sort());
  });

  it('names in each problem answer only error codes of its status', () => {
    for (const [status, name] of operations().flatMap(({ op }) => Object.entries(op.responses).map(([s, r]: [string, any]) => [s, r.$ref?.split('/').at(-1)] as const))) {
      if (!name || Number(status) < 400) continue;
      const response = spec.components.responses![name] as { description: string; content?: Record<string, unknown> };
      expect(Object.keys(response.content ?? {}), name).toEqual(['application/problem+json']);
      for (const [, code] of response.description.matchAll(/(KG_ERR_[A-Z_]+)/g)) {
        expect(ERRORS, code).toHaveProperty(code!);
        expect(ERRORS[code as keyof typeof ERRORS].status, `${name} names ${code}`).toBe(Number(status));
      }
    }
  });

  it('resolves every $ref', () => {
    const refs = [...docs('openapi.yaml').matchAll(/\$ref: '#\/components\/([A-Za-z]+)\/([A-Za-z]+)'/g)];
    expect(refs.length).toBeGreaterThan(20);
    for (const [, kind, name] of refs) expect(spec.components[kind!]?.[name!], `${kind}/${name}`).toBeDefined();
  });
});

describe('docs/admin-api.md', () => {
  it('names only error codes that exist, and every path the router serves', () => {
    const text = docs('admin-api.md');
    for (const [, code] of text.matchAll(/`(KG_ERR_[A-Z_]+)`/g)) expect(ERRORS, code).toHaveProperty(code!);
    for (const r of adminRouteTable()) {
      for (const m of r.methods) expect(text, `${m} ${r.path}`).toContain(`${m} ${r.path}`);
    }
  });
});

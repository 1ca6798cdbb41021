// docs/openapi.yaml and docs/admin-api.md stay in step with the admin API's router: every
// served path and method is described and nothing else is, every $ref resolves, every
// operation documents its 401 and 403, and every error code the docs name exists.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { adminRouteTable } from '../../src/admin/api.js';
import { ERRORS } from '../../src/errors/catalog.js';

const docs = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');
const spec = parse(docs('openapi.yaml')) as { openapi: string; paths: Record<string, Record<string, any>>; components: Record<string, Record<string, unknown>> };
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

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

  it('documents 401 and 403 on every operation', () => {
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const m of Object.keys(item).filter((k) => HTTP_METHODS.includes(k))) {
        expect(Object.keys(item[m].responses), `${m} ${path}`).toEqual(expect.arrayContaining(['401', '403']));
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

// The exit-code table lives in one place, the `exit` of each code in src/errors/catalog.ts,
// read by exitCodeFor(). docs/cli.md's table and the "CLI exit status N" of docs/errors.md
// must say the same: a code moved to another exit in the catalog and not in the docs (or the
// other way round) fails here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SourceError } from '../../src/config/source.js';
import { ERRORS, EXIT, type ErrorCode } from '../../src/errors/catalog.js';
import { KeygateFault } from '../../src/errors/fault.js';
import { exitCodeFor } from '../../src/errors/mapping.js';
import { OperationError } from '../../src/store/operations.js';

const doc = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');
const CODES = Object.keys(ERRORS) as ErrorCode[];

/** docs/cli.md, "## Exit codes": exit → the codes its row names. */
function cliTable(): Map<number, string[]> {
  const section = doc('cli.md').split(/^## /m).find((s) => s.startsWith('Exit codes'))!;
  const rows = new Map<number, string[]>();
  for (const m of section.matchAll(/^\| (\d+) \| [^|]+ \|([^|]*)\|$/gm)) rows.set(Number(m[1]), [...m[2]!.matchAll(/`(KG_ERR_[A-Z_]+)`/g)].map((c) => c[1]!));
  return rows;
}

describe('the exit-code table', () => {
  it('has the documented rows: 0 ok, 1 invalid input, 2 usage, 3 not found, 4 conflict, 5 store unavailable', () => {
    expect(EXIT).toEqual({ ok: 0, invalid: 1, usage: 2, notFound: 3, conflict: 4, store: 5 });
    expect([...cliTable().keys()]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('docs/cli.md names each code in the row of its exit, and every code outside rows 0 and 1 is named', () => {
    const rows = cliTable();
    for (const [exit, codes] of rows) for (const code of codes) expect(ERRORS[code as ErrorCode]?.exit, `${code} in the row of ${exit}`).toBe(exit);
    const named = new Set([...rows.values()].flat());
    for (const code of CODES) if (ERRORS[code].exit !== EXIT.invalid) expect(named.has(code), `${code} (exit ${ERRORS[code].exit}) is not in docs/cli.md`).toBe(true);
  });

  it('docs/errors.md states the same exit status where it states one', () => {
    const text = doc('errors.md');
    let stated = 0;
    for (const part of text.split(/^### /m)) {
      const code = /^`(KG_ERR_[A-Z_]+)`/.exec(part)?.[1] as ErrorCode | undefined;
      const m = /CLI exit status (\d+)/.exec(part.replace(/\s+/g, ' '));
      if (!code || !m) continue;
      stated++;
      expect(Number(m[1]), code).toBe(ERRORS[code].exit);
    }
    expect(stated).toBeGreaterThan(5);
  });

  it('exitCodeFor reads the catalog for every error keygate raises, and takes anything else for invalid input', () => {
    expect(exitCodeFor(new OperationError('not_found', 'x'))).toBe(3);
    expect(exitCodeFor(new OperationError('conflict', 'x'))).toBe(4);
    expect(exitCodeFor(new OperationError('invalid', 'x'))).toBe(1);
    expect(exitCodeFor(new KeygateFault('KG_ERR_STORE_READ_ONLY', 'x'))).toBe(5);
    expect(exitCodeFor(new SourceError([]))).toBe(1);
    expect(exitCodeFor(new Error('surprise'))).toBe(1);
  });
});

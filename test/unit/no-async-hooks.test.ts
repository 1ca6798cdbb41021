// The proxy's process never turns on an async hook. On Node 20 an AsyncLocalStorage (or any
// async_hooks.createHook) makes every promise, tick and timer of the process pay an init
// callback — a few per cent of each request's CPU in a profile — and `keygate serve` runs inside
// the CLI program, so a hook anywhere in src/ is a hook on the request path.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../../src/', import.meta.url).pathname;
const FORBIDDEN = /\b(AsyncLocalStorage|createHook|executionAsyncResource|AsyncResource)\b/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Code lines only: a comment may say why the API is not used. */
const code = (text: string) => text.split('\n').filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l));

describe('no async hooks in src/', () => {
  it('no module uses AsyncLocalStorage, AsyncResource or createHook', () => {
    const hits = sources(SRC).flatMap((f) => code(readFileSync(f, 'utf8')).filter((l) => FORBIDDEN.test(l)).map((l) => `${relative(SRC, f)}: ${l.trim()}`));
    expect(hits).toEqual([]);
  });

  it('twin: the check sees a use', () => {
    expect(code("import { AsyncLocalStorage } from 'node:async_hooks';\n// AsyncLocalStorage is not used").filter((l) => FORBIDDEN.test(l))).toHaveLength(1);
  });
});

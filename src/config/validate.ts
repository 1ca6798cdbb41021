// Runs a zod schema over a YamlSource and turns every issue into a positioned Problem.
import type { z } from 'zod';
import type { Problem, ValuePath, YamlSource } from './source.js';

export function describePath(path: ValuePath): string {
  return path.reduce<string>((s, seg) => (typeof seg === 'number' ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');
}

/**
 * `prefix`: where `src` sits in a larger document (one record of the credential file, read
 * line by line): messages name the whole path, positions stay those of `src`.
 */
export function validateSource<S extends z.ZodType>(src: YamlSource, schema: S, prefix: ValuePath = []): { value?: z.output<S>; problems: Problem[] } {
  if (src.problems.length > 0 && src.value === undefined) return { problems: src.problems };
  const result = schema.safeParse(src.value ?? {});
  if (result.success) return { value: result.data, problems: src.problems };
  const problems = [...src.problems];
  const at = (path: ValuePath, message: string, key?: string) => src.problemAt(path.slice(prefix.length), message, key);
  for (const issue of result.error.issues) {
    const path = [...prefix, ...issue.path.filter((p): p is string | number => typeof p !== 'symbol')];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push(at(path, `unknown key "${key}"${path.length ? ` in ${describePath(path)}` : ''}`, key));
      continue;
    }
    // A required key that is absent reads better as what it is than as zod's "expected object,
    // received undefined"; it is positioned at the key of the map that lacks it.
    const parentPath = path.slice(0, -1);
    const key = path[path.length - 1];
    if (issue.code === 'invalid_type' && typeof key === 'string' && isAbsentKey(src.value, parentPath.slice(prefix.length), key)) {
      const message = `missing required key "${key}"${parentPath.length ? ` in ${describePath(parentPath)}` : ''}`;
      const owner = parentPath[parentPath.length - 1];
      problems.push(typeof owner === 'string' && parentPath.length > prefix.length ? at(parentPath.slice(0, -1), message, owner) : at(parentPath, message));
      continue;
    }
    const where = describePath(path);
    problems.push(at(path, where ? `${where}: ${issue.message}` : issue.message));
  }
  // A value already reported while reading (an unset ${VAR}) fails the schema too; the second
  // message at the same place would only repeat the first in other words.
  const seen = new Set(src.problems.map((p) => `${p.line}:${p.col}`));
  const deduped = problems.filter((p, i) => i < src.problems.length || !seen.has(`${p.line}:${p.col}`));
  deduped.sort((a, b) => a.line - b.line || a.col - b.col);
  return { problems: deduped };
}

/** True when the value at `parentPath` is a map that does not hold `key`. */
function isAbsentKey(root: unknown, parentPath: ValuePath, key: string): boolean {
  let v: unknown = root ?? {};
  for (const seg of parentPath) {
    if (typeof v !== 'object' || v === null) return false;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Object.hasOwn(v, key);
}

// Runs a zod schema over a YamlSource and turns every issue into a positioned Problem.
import type { z } from 'zod';
import type { Problem, ValuePath, YamlSource } from './source.js';

export function describePath(path: ValuePath): string {
  return path.reduce<string>((s, seg) => (typeof seg === 'number' ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');
}

export function validateSource<S extends z.ZodType>(src: YamlSource, schema: S): { value?: z.output<S>; problems: Problem[] } {
  if (src.problems.length > 0 && src.value === undefined) return { problems: src.problems };
  const result = schema.safeParse(src.value ?? {});
  if (result.success) return { value: result.data, problems: src.problems };
  const problems = [...src.problems];
  for (const issue of result.error.issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push(src.problemAt(path, `unknown key "${key}"${path.length ? ` in ${describePath(path)}` : ''}`, key));
      continue;
    }
    const where = describePath(path);
    problems.push(src.problemAt(path, where ? `${where}: ${issue.message}` : issue.message));
  }
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return { problems };
}

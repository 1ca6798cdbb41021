// YAML documents that remember where each value came from, so that every problem can be
// reported as `file:line:col: message` (the form editors and CI annotations understand).
import { readFileSync } from 'node:fs';
import { KeygateFault } from '../errors/fault.js';
import { Document, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Node } from 'yaml';

export type ValuePath = ReadonlyArray<string | number>;

export interface Problem {
  file: string;
  line: number;
  col: number;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

/** Thrown (or collected) when a source file has problems; carries every one of them. */
export class SourceError extends KeygateFault {
  constructor(readonly problems: Problem[]) {
    super('KG_ERR_CONFIG_INVALID', problems.map(formatProblem).join('\n'));
  }
}

export interface YamlSource {
  file: string;
  doc: Document;
  /** The parsed value, after ${ENV} substitution. */
  value: unknown;
  /** Problems found while reading (syntax, ${ENV}); validation adds its own. */
  problems: Problem[];
  /** Position of the value at `path` (or its nearest ancestor that exists). */
  locate(path: ValuePath, key?: string): { line: number; col: number };
  problemAt(path: ValuePath, message: string, key?: string): Problem;
}

export interface ReadOptions {
  /** Substitute ${VAR} and ${VAR:-default} in string values (keygate.yaml; not the credential file). */
  env?: NodeJS.ProcessEnv;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function readYamlFile(file: string, opts: ReadOptions = {}): YamlSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    const problems = [{ file, line: 1, col: 1, message: `cannot read: ${why}` }];
    return { file, doc: new Document(), value: undefined, problems, locate: () => ({ line: 1, col: 1 }), problemAt: (_p, message) => ({ file, line: 1, col: 1, message }) };
  }
  return parseYamlText(file, text, opts);
}

export function parseYamlText(file: string, text: string, opts: ReadOptions = {}): YamlSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  const problems: Problem[] = [];
  const at = (offset: number | undefined) => {
    const pos = lines.linePos(offset ?? 0);
    return { line: pos.line, col: pos.col };
  };
  // After the first syntax error the rest of the stream is guesswork: report that one only.
  const first = doc.errors[0] ?? doc.warnings[0];
  if (first) problems.push({ file, ...at(first.pos[0]), message: `YAML: ${first.message.split('\n')[0]!}` });
  if (opts.env && doc.errors.length === 0) {
    const env = opts.env;
    visit(doc, {
      Scalar(_key, node) {
        if (typeof node.value !== 'string' || !node.value.includes('${')) return;
        const replaced = node.value.replace(ENV_REF, (whole, name: string, fallback: string | undefined) => {
          const v = env[name];
          if (v !== undefined && v !== '') return v;
          if (fallback !== undefined) return fallback;
          problems.push({ file, ...at(node.range?.[0]), message: `environment variable ${name} is not set (write \${${name}:-default} for a default)` });
          return whole;
        });
        // An unquoted scalar reads as YAML would have read the value written in place:
        // `port: ${PORT}` is a number, `public: ${FLAG}` a boolean.
        node.value = node.type === 'PLAIN' ? plainScalar(replaced) : replaced;
      },
    });
  }
  const locateNode = (path: ValuePath, key?: string): Node | undefined => {
    let node: unknown = doc.contents;
    let found = node as Node | undefined;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        node = pair.value ?? pair.key;
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        if (node === undefined) break;
      } else break;
      found = node as Node;
    }
    if (key !== undefined && isMap(found)) {
      const pair = found.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
      if (pair && isScalar(pair.key)) return pair.key as Node;
    }
    return found;
  };
  const locate = (path: ValuePath, key?: string) => at(locateNode(path, key)?.range?.[0]);
  let value: unknown;
  if (doc.errors.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: 50 });
    } catch (err) {
      // What the parser lets through but cannot turn into a value (an alias to an anchor that
      // comes later or never, an alias bomb): a problem at the alias, not a crash.
      problems.push({ file, ...at(firstAliasOffset(doc)), message: `YAML: ${(err as Error).message.split('\n')[0]!}` });
    }
  }
  return { file, doc, value, problems, locate, problemAt: (path, message, key) => ({ file, ...locate(path, key), message }) };
}

function firstAliasOffset(doc: Document): number | undefined {
  let offset: number | undefined;
  visit(doc, {
    Alias(_key, node) {
      offset = node.range?.[0];
      return visit.BREAK;
    },
  });
  return offset;
}

function plainScalar(text: string): string | number | boolean | null {
  if (/^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  if (text === 'null' || text === '~') return null;
  return text;
}

// The credential file's layout. keygate writes one record per line, each a JSON object — JSON
// is YAML, so the file stays one YAML document that operators may edit by hand — so that it
// can be read line by line: split, JSON.parse each record, and (for a follower) parse only the
// lines that differ from the version before. At 100,000 credentials the YAML library needs
// about a minute and 2 GB for the whole document; this layout about half a second. A line
// that is not keygate's own JSON is read by the YAML parser alone (exact YAML meaning, exact
// positions); a file that is not this layout at all (hand-written, v0.1's block style) is read
// by the YAML parser whole, as before, and the next write puts it in this layout.
//
// The last comment before the end line holds the SHA-256 of everything above it. A file that
// matches it is byte for byte what keygate wrote (and validated when it wrote it): its records
// are taken without validating each again. Any hand edit breaks the digest, and then every
// record is validated.
//
// One module because the writers (serializeLines, serializeParts, linesLayout) and the reader
// (readLines) are the two halves of one format, and change together.
import { createHash, hash } from 'node:crypto';
import { parseYamlText, type Problem, type ValuePath } from '../../config/source.js';
import { validateSource } from '../../config/validate.js';
import { recordSchemas, storeSchema } from '../schema.js';
import type { StoreData } from '../types.js';

export type ListName = 'accounts' | 'tokens' | 'certificates';
export const LISTS: readonly ListName[] = ['accounts', 'tokens', 'certificates'];

/**
 * The last line keygate writes. A file that announces it in its header (every file keygate
 * wrote since v0.2) and does not end with it was cut short — a full disk, a copy that died, an
 * editor that crashed while saving — and is refused, so that half a file never costs every
 * token after the cut. Hand-written files without the header need no end line.
 */
export const END_LINE = '# end of keygate credential store';
const ANNOUNCE = 'keygate ends this file with the line';
const HEADER = [
  '# keygate credential store. Managed by `keygate account|token|cert` and the admin API.',
  '# Holds no secret: tokens are stored as SHA-256 hashes only.',
  `# ${ANNOUNCE} "${END_LINE}";`,
  '# a file that starts with this header and lacks that line is taken as cut short and refused.',
  '# One record per line, as JSON (which is YAML). Hand edits may use any YAML: keygate reads',
  '# it, and writes this layout again on its next change.',
].join('\n');
const DIGEST = '# sha256 of the lines above: ';
/** What precedes each record. */
const ITEM = '  - ';

/** True when a file keygate wrote lost its end: the header announces the end line, the end lacks it. */
export function isCutShort(text: string): boolean {
  const head = text.slice(0, 1024);
  const announced = head.startsWith('# keygate credential store') && head.includes(ANNOUNCE);
  return announced && !text.trimEnd().endsWith(END_LINE);
}

const KEYS: Record<ListName, string[]> = {
  accounts: Object.keys(recordSchemas.accounts.shape),
  tokens: Object.keys(recordSchemas.tokens.shape),
  certificates: Object.keys(recordSchemas.certificates.shape),
};

// Characters JSON leaves raw that YAML does not allow in a document (DEL, C1 controls, U+FFFE/F),
// or that YAML 1.1 readers and editors take for line breaks (NEL, U+2028/9), or a BOM.
const NOT_YAML = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;

/** A record as keygate writes it: its fields in schema order, as JSON that YAML reads the same. */
export function recordLine(list: ListName, record: object): string {
  return JSON.stringify(record, KEYS[list]).replace(NOT_YAML, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The key of a record in its list: an account's name, a credential's id. */
export function keyOf(list: ListName, record: object): string {
  return list === 'accounts' ? (record as { name: string }).name : (record as { id: string }).id;
}

/**
 * The file for `data`. `line` may hand back the line a record was read from (unchanged since):
 * rewriting 100,000 records then costs no JSON.stringify for the 99,999 that did not change.
 */
export function serializeStore(data: StoreData, line?: (list: ListName, record: object) => string | undefined): string {
  const of = (list: ListName) => (data[list] as readonly object[]).map((r) => line?.(list, r) ?? recordLine(list, r));
  return serializeLines({ accounts: of('accounts'), tokens: of('tokens'), certificates: of('certificates') });
}

/** The file for these record lines (each as recordLine writes it), in this order. */
export function serializeLines(lines: Record<ListName, readonly string[]>): string {
  const out: string[] = [HEADER, 'version: 1'];
  for (const list of LISTS) {
    if (lines[list].length === 0) {
      out.push(`${list}: []`);
      continue;
    }
    out.push(`${list}:`);
    for (const l of lines[list]) out.push(ITEM + l);
  }
  const body = out.join('\n') + '\n';
  return `${body}${DIGEST}${createHash('sha256').update(body).digest('hex')}\n${END_LINE}\n`;
}

/** Positions in a file of keygate's layout: its record lines, the lines of its list keys and of `version: 1`. */
export function linePositioner(file: string, entries: Record<ListName, LineEntry[]>, headers: ReadonlyMap<ListName, number>, versionLine: number): Positioner {
  return {
    problemAt(path, message, key) {
      const [head, index, field] = path;
      const of = LISTS.includes(head as ListName) ? (head as ListName) : undefined;
      const entry = of && typeof index === 'number' ? entries[of][index] : undefined;
      if (!entry) return { file, line: (of && headers.get(of)) || (head === 'version' || key === 'version' ? versionLine : 1), col: 1, message };
      const name = typeof field === 'string' ? field : path.length === 2 ? key : undefined;
      const col = name === undefined ? -1 : entry.body.indexOf(`"${name}":`);
      return { file, line: entry.line, col: entry.col + Math.max(col, 0), message };
    },
  };
}

/**
 * Where serializeLines puts what, for lists of these lengths: the line (1-based) of
 * `version: 1`, of each list's key, and of each list's first item (the items follow one per
 * line, their bodies at column ITEM_COL) — so that a writer knows the positions of what it
 * wrote without reading it back.
 */
export function linesLayout(counts: Record<ListName, number>): { versionLine: number; headers: Map<ListName, number>; first: Record<ListName, number> } {
  const versionLine = HEADER.split('\n').length + 1;
  const headers = new Map<ListName, number>();
  const first = { accounts: 0, tokens: 0, certificates: 0 };
  let line = versionLine;
  for (const list of LISTS) {
    headers.set(list, ++line);
    first[list] = line + 1;
    line += counts[list];
  }
  return { versionLine, headers, first };
}

/** The column (1-based) where serializeLines puts a record's body. */
export const ITEM_COL = ITEM.length + 1;

/** A record line for serializeParts: its text, or where its bytes are in `source`. */
export type LinePart = string | { start: number; end: number };

/**
 * The same file as serializeLines, as bytes, from lines given as text or as byte ranges of
 * `source` (the version being rewritten: its unchanged lines are copied, never decoded), and
 * the SHA-256 of the whole file, taken in the pass that computes the digest line. A follower's
 * write of one changed record in 100,000 then costs no 33 MB string, no split and no join, and
 * two passes of SHA-256 fewer. `into(size)` gives the buffer to write into (at least `size` bytes).
 */
export function serializeParts(lines: Record<ListName, readonly LinePart[]>, source: Buffer, into: (size: number) => Buffer): { bytes: Buffer; digest: string } {
  const head: string[] = [HEADER, 'version: 1'];
  let size = 0;
  for (const list of LISTS) for (const l of lines[list]) size += ITEM.length + 1 + (typeof l === 'string' ? Buffer.byteLength(l, 'utf8') : l.end - l.start);
  const tail = `${DIGEST}${'0'.repeat(64)}\n${END_LINE}\n`;
  const out = into(size + Buffer.byteLength(HEADER) + 64 * LISTS.length + tail.length);
  let at = 0;
  const text = (t: string) => (at += out.write(t, at, 'utf8'));
  text(head.join('\n') + '\n');
  for (const list of LISTS) {
    if (lines[list].length === 0) {
      text(`${list}: []\n`);
      continue;
    }
    text(`${list}:\n`);
    for (const l of lines[list]) {
      at += out.write(ITEM, at, 'latin1');
      if (typeof l === 'string') text(l);
      else at += source.copy(out, at, l.start, l.end);
      out[at++] = 0x0a;
    }
  }
  const body = createHash('sha256').update(out.subarray(0, at));
  const whole = body.copy();
  const rest = `${DIGEST}${body.digest('hex')}\n${END_LINE}\n`;
  whole.update(rest);
  text(rest);
  return { bytes: out.subarray(0, at), digest: whole.digest('hex') };
}

/** A record line of the version read: its key, line number (1-based) and text after the dash. */
export interface LineEntry {
  key: string;
  line: number;
  /** The text after the dash; '' once a follower let it go (follow-core.ts keeps `fp` only). */
  body: string;
  /** lineFingerprint(body), when the read computed it (a follower's reads). */
  fp?: string | undefined;
  /** Parsed, when the line was (not one of the `known` lines). */
  record?: object | undefined;
  /** The body is exactly recordLine(record): it may be written back as it is. */
  canonical: boolean;
  /** The column (1-based) the body starts at. */
  col: number;
}

export interface Positioner {
  problemAt(path: ValuePath, message: string, key?: string): Problem;
}

export interface ParsedFile {
  /** The whole inventory, when it was valid and every line was parsed. */
  data?: StoreData;
  problems: Problem[];
  /** Where the values of this version are. */
  at: Positioner;
  /** The record lines in file order; absent when the file was read by the YAML parser whole. */
  entries?: Record<ListName, LineEntry[]>;
  /** Nothing but white space. */
  empty?: boolean;
  /** How many record lines were parsed (the others were `known`). */
  parsed?: number;
  /** Known lines found more than once: [list, index in entries]. */
  repeats?: Array<[ListName, number]>;
}

/**
 * A line of a previous version, known by its fingerprint (lineFingerprint) rather than its
 * text, so that the follower keeps neither the file's text nor the lines cut from it; `seen`
 * is stamped with the `epoch` of each read that finds it again.
 */
export interface KnownLine {
  key: string;
  fp: string;
  seen: number;
}

/**
 * What a line is known by between reads: its SHA-256, as a 32-character latin1 string (48
 * bytes in V8, against the line itself and the 33 MB text it was cut from at 100,000 records).
 * A cryptographic digest, so that no edit can make a changed line pass for the old one.
 */
export function lineFingerprint(body: string): string {
  return hash('sha256', body, 'binary');
}

/** Line fingerprints of a previous version, by list: fingerprint → line. Lines found here are not parsed again. */
export interface KnownLines {
  lines: Record<ListName, ReadonlyMap<string, KnownLine>>;
  epoch: number;
}

/** Reads the bytes of a credential file: keygate's layout line by line, anything else as YAML. */
export function parseStoreFile(file: string, bytes: Buffer, known?: KnownLines): ParsedFile {
  const text = bytes.toString('utf8');
  const start: Positioner = { problemAt: (_p, message) => ({ file, line: 1, col: 1, message }) };
  if (text.trim() === '') return { data: { version: 1, accounts: [], tokens: [], certificates: [] }, problems: [], at: start, empty: true };
  if (isCutShort(text)) {
    const line = text.trimEnd().split('\n').length;
    return { problems: [{ file, line, col: 1, message: `the file ends here without its last line "${END_LINE}": it was cut short (a full disk, a copy or save that died); nothing was changed. Restore it from a backup, or add that line if you edited it by hand` }], at: start };
  }
  const lines = readLines(file, text, digestMatches(bytes), known);
  if (lines) return lines;
  const source = parseYamlText(file, text);
  const { value, problems } = validateSource(source, storeSchema);
  return value && problems.length === 0 ? { data: value, problems, at: source } : { problems, at: source };
}

function digestMatches(bytes: Buffer): boolean {
  const at = bytes.lastIndexOf(`\n${DIGEST}`);
  if (at < 0) return false;
  const hexAt = at + 1 + DIGEST.length;
  if (bytes.toString('latin1', hexAt + 64).trim() !== END_LINE) return false;
  return createHash('sha256').update(bytes.subarray(0, at + 1)).digest('hex') === bytes.toString('latin1', hexAt, hexAt + 64);
}

/**
 * A list's key line, `tokens:` or `tokens: []` (trailing blanks allowed): the list and whether
 * it is open. Not a regular expression: the last match of one keeps its subject — a line
 * sliced from the file's text, and so the whole text (33 MB at 100,000 records) — alive.
 */
function sectionOf(line: string): { list: ListName; open: boolean } | undefined {
  const colon = line.indexOf(':');
  const list = line.slice(0, colon) as ListName;
  if (colon < 0 || !LISTS.includes(list)) return undefined;
  let rest = line.slice(colon + 1);
  let end = rest.length;
  while (end > 0 && (rest.charCodeAt(end - 1) === 0x20 || rest.charCodeAt(end - 1) === 0x09)) end--;
  rest = rest.slice(0, end);
  return rest === '' ? { list, open: true } : rest === ' []' ? { list, open: false } : undefined;
}

/**
 * keygate's layout, line by line; undefined when the text is not in it (then the YAML parser
 * reads it whole). Only what reads the same to YAML is accepted here: comments, `version: 1`,
 * the three list keys, and items that are one flow mapping on one line, all at one indent.
 */
function readLines(file: string, text: string, trusted: boolean, known: KnownLines | undefined): ParsedFile | undefined {
  const lines = text.split('\n');
  const entries: Record<ListName, LineEntry[]> = { accounts: [], tokens: [], certificates: [] };
  const headers = new Map<ListName, number>();
  const problems: Problem[] = [];
  const repeats: Array<[ListName, number]> = [];
  let versionLine = 0;
  let list: ListName | undefined;
  let open = false;
  let indent = -1;
  let complete = true;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    let ind = 0;
    while (line.charCodeAt(ind) === 0x20) ind++;
    if (ind === line.length || line.charCodeAt(ind) === 0x23 /* # */) continue;
    if (line.startsWith('- {', ind)) {
      if (!list || !open) return undefined;
      if (indent < 0) indent = ind;
      else if (ind !== indent) return undefined;
      let body = line.slice(ind + 2);
      if (!body.endsWith('}')) body = body.trimEnd();
      if (!body.endsWith('}')) return undefined;
      const fp = known ? lineFingerprint(body) : undefined;
      const hit = fp === undefined ? undefined : known!.lines[list].get(fp);
      if (hit !== undefined) {
        complete = false;
        // The same line twice is two records of one key: the follower refuses that version.
        if (hit.seen === known!.epoch) repeats.push([list, entries[list].length]);
        hit.seen = known!.epoch;
        entries[list].push({ key: hit.key, line: i + 1, body, fp, record: undefined, canonical: true, col: ind + 3 });
        continue;
      }
      const read = readRecord(file, list, body, trusted, [list, entries[list].length]);
      if (!read) return undefined;
      if ('problems' in read) {
        for (const p of read.problems) problems.push({ ...p, line: i + 1, col: p.col + ind + 2 });
        entries[list].push({ key: '', line: i + 1, body, fp: undefined, record: undefined, canonical: false, col: ind + 3 });
        continue;
      }
      entries[list].push({ key: keyOf(list, read.record), line: i + 1, body, fp, record: read.record, canonical: read.canonical, col: ind + 3 });
      continue;
    }
    if (ind > 0 || line.trimStart() !== line) return undefined;
    if (line === 'version: 1') {
      if (versionLine) return undefined;
      versionLine = i + 1;
      list = undefined;
      continue;
    }
    const m = sectionOf(line);
    if (!m || headers.has(m.list)) return undefined;
    if (list && open && entries[list].length === 0) return undefined; // `tokens:` alone is null to YAML
    list = m.list;
    headers.set(list, i + 1);
    open = m.open;
    indent = -1;
  }
  if (!versionLine || (list && open && entries[list].length === 0)) return undefined;
  const at = linePositioner(file, entries, headers, versionLine);
  const parsed = LISTS.reduce((n, l) => n + entries[l].filter((e) => e.record !== undefined).length, 0) + problems.length;
  if (problems.length || !complete) return { problems, at, entries, parsed, repeats };
  const records = (l: ListName) => entries[l].map((e) => e.record!);
  const data = { version: 1, accounts: records('accounts'), tokens: records('tokens'), certificates: records('certificates') } as StoreData;
  return { data, problems, at, entries, parsed };
}

/**
 * One record line. keygate's own JSON is parsed as JSON (and, unless the file's digest vouches
 * for it, validated and checked to be what keygate would write); anything else on the line is
 * read by the YAML parser, which gives it its exact YAML meaning. Undefined when the line does
 * not stand on its own (a YAML syntax error, an alias to another line): the whole file is
 * read as YAML then, which says where.
 */
function readRecord(file: string, list: ListName, body: string, trusted: boolean, path: ValuePath): { record: object; canonical: boolean } | { problems: Problem[] } | undefined {
  const schema = recordSchemas[list];
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
    if (trusted) return { record: json, canonical: true };
    const r = schema.safeParse(json);
    if (r.success && recordLine(list, r.data) === body) return { record: r.data, canonical: true };
  }
  const source = parseYamlText(file, body);
  if (source.problems.length || source.value === undefined) return undefined;
  const { value, problems } = validateSource(source, schema, path);
  return value ? { record: value, canonical: recordLine(list, value) === body } : { problems };
}

// Reading the inventory out of Redis: the change log after a revision (the common case, cost
// proportional to what changed) and a whole snapshot (first start, after a reconnect, when the
// log no longer reaches back).
import type { Redis } from 'ioredis';
import { Inventory } from '../inventory.js';
import type { InventoryKeys, KindCode } from './keys.js';
import { CHANGES, runScript } from './scripts.js';

/** One entry of the change log, as the commit script stores it. */
export interface LogEntry {
  rev: number;
  commit: string;
  actor: string | null;
  at: string;
  /** Kind, key, record (null = deleted). Absent when the update was too large to log: readers reload. */
  changes?: Array<[KindCode, string, unknown]>;
  /** Number of changes, when they were too many to log. */
  count?: number;
}

export interface ChangesPage {
  revision: number;
  epoch: string;
  entries: LogEntry[];
}

/** Entries are read in pages of this many, so one read never returns an unbounded reply. */
export const PAGE = 200;

export async function readChanges(client: Redis, keys: InventoryKeys, from: number): Promise<ChangesPage> {
  const reply = (await runScript(client, CHANGES, [keys.rev, keys.epoch, keys.log], [from, PAGE])) as [number, string, string[]];
  const entries: LogEntry[] = [];
  for (const text of reply[2]) {
    try {
      entries.push(JSON.parse(text) as LogEntry);
    } catch {
      // An entry that does not parse is a gap: the caller sees a missing revision and reloads.
    }
  }
  return { revision: Number(reply[0]), epoch: String(reply[1]), entries };
}

/**
 * True when the page takes a copy at `from` forward: the entries are exactly the revisions
 * from+1, from+2, … each with its changes, and there is at least one when Redis is ahead (a
 * revision with no entry was trimmed, too large to log, or raised after lost writes).
 */
export function bridges(from: number, page: ChangesPage): boolean {
  if (page.revision < from) return false;
  if (page.revision > from && page.entries.length === 0) return false;
  return page.entries.every((e, i) => e.rev === from + 1 + i && Array.isArray(e.changes));
}

/**
 * Scans one hash into the inventory under construction, page by page: the next page is asked
 * for before this one is parsed, so that Redis and the parsing work at once, and no page's text
 * outlives its parsing.
 */
async function scanHash(client: Redis, key: string, code: KindCode, into: Inventory): Promise<void> {
  let page = client.hscan(key, '0', 'COUNT', SCAN_COUNT);
  // HSCAN returns each field present for the whole scan at least once; a bound on the number of
  // calls keeps a pathological hash from looping for ever.
  for (let calls = 0; calls < 10_000_000; calls++) {
    const [next, flat] = await page;
    if (next !== '0') page = client.hscan(key, next, 'COUNT', SCAN_COUNT);
    for (let i = 0; i + 1 < flat.length; i += 2) into.ingest(code, flat[i]!, flat[i + 1]!);
    if (next === '0') return;
  }
}

/** Fields per HSCAN step: small enough that Redis is never blocked for long by one step. */
const SCAN_COUNT = 1000;

/**
 * A consistent snapshot without blocking Redis: read the revision R0, scan the three hashes in
 * small steps (other commands run in between), then replay the change log after R0. Every
 * record changed during the scan is rewritten by the replay in revision order; every other
 * record was there for the whole scan and so was returned by it. If the log cannot bridge the
 * scan (it was trimmed, or an update too large to log happened), try again; the last attempt
 * reads everything in one MULTI.
 */
export async function readSnapshot(client: Redis, keys: InventoryKeys, where: string, attempts = 3): Promise<Inventory> {
  for (let attempt = 1; attempt < attempts; attempt++) {
    const [revText, epochText] = await client.mget(keys.rev, keys.epoch);
    let revision = Number(revText ?? 0);
    const epoch = epochText ?? '';
    const inv = new Inventory(revision, epoch, where);
    await scanHash(client, keys.accounts, 'a', inv);
    await scanHash(client, keys.tokens, 't', inv);
    await scanHash(client, keys.certs, 'c', inv);
    let bridged = true;
    for (let pages = 0; pages < 10_000; pages++) {
      const page = await readChanges(client, keys, revision);
      if (page.epoch !== epoch || !bridges(revision, page)) {
        bridged = false;
        break;
      }
      for (const e of page.entries) inv.applyRaw(e.changes!);
      if (page.entries.length > 0) revision = page.entries[page.entries.length - 1]!.rev;
      if (revision >= page.revision) break;
    }
    inv.revision = revision;
    if (bridged) return inv.finish();
  }
  const reply = await client.multi().get(keys.rev).get(keys.epoch).hgetall(keys.accounts).hgetall(keys.tokens).hgetall(keys.certs).exec();
  if (!reply) throw new Error('snapshot: transaction aborted');
  for (const [err] of reply) if (err) throw err;
  const value = (i: number) => reply[i]![1];
  const inv = new Inventory(Number(value(0) ?? 0), String(value(1) ?? ''), where);
  (['a', 't', 'c'] as const).forEach((code, i) => {
    for (const [key, json] of Object.entries(value(2 + i) as Record<string, string>)) inv.ingest(code, key, json);
  });
  return inv.finish();
}

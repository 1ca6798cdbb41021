// The one reader of the dates and instants keygate takes from people and files: the CLI's
// --expires / --end-date, the admin API's expires / endDate, the credential file's instants
// and account end dates. JavaScript's Date rolls an impossible day over (2027-02-30 becomes
// 2027-03-02) and reads many non-ISO forms; here a text is taken only in the ISO 8601 forms
// keygate documents, and only when every field names something that exists — anything else is
// an error that quotes the input. A day given as an end means the end of that day in UTC, and
// every such instant comes from endOfDayMs: 23:59:59.999Z, the last millisecond of the day, so
// that the whole day counts and the next one does not.
import { parseDuration } from './units.js';

/** YYYY-MM-DD. */
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
/** YYYY-MM-DDTHH:MM[:SS[.fraction]](Z|±HH:MM); lower-case t and z as RFC 3339 allows. */
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|[+-]\d{2}:\d{2})$/;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function validDay(y: number, m: number, d: number): boolean {
  return y >= 1970 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= daysIn(y, m);
}

/** The day's midnight (UTC), epoch ms; undefined when `text` is not YYYY-MM-DD of a day that exists. */
export function parseDayMs(text: string): number | undefined {
  const m = DAY.exec(text);
  if (!m) return undefined;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  return validDay(y, mo, d) ? Date.UTC(y, mo - 1, d) : undefined;
}

export function isDay(text: string): boolean {
  return parseDayMs(text) !== undefined;
}

/** The last millisecond of the day that starts at `startMs`: 23:59:59.999 UTC. The only place that says so. */
function lastMsOf(startMs: number): number {
  return startMs + 86_400_000 - 1;
}

/** The end of a day (YYYY-MM-DD), epoch ms: 23:59:59.999 UTC. */
export function endOfDayMs(day: string): number {
  const start = parseDayMs(day);
  if (start === undefined) throw new RangeError(`"${day}" is not a day (YYYY-MM-DD)`);
  return lastMsOf(start);
}

/** How the end of a day reads in messages and docs. */
export const END_OF_DAY_TEXT = '23:59:59.999 UTC';

/** Epoch ms of an ISO 8601 date-time with an offset; undefined unless every field exists. */
export function parseInstantMs(text: string): number | undefined {
  const m = INSTANT.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  if (!validDay(y, mo, d) || h > 23 || mi > 59 || s > 59) return undefined;
  const zone = m[8]!;
  if (zone !== 'Z' && zone !== 'z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
  }
  const ms = Date.parse(text.toUpperCase());
  return Number.isFinite(ms) ? ms : undefined;
}

export function isInstant(text: string): boolean {
  return parseInstantMs(text) !== undefined;
}

export type WhenResult = { ok: true; ms: number } | { ok: false; message: string };

/**
 * A point in time as a person writes one: a duration from `nowMs` (30d, 12h), a day (the end
 * of it), or an ISO date-time. The message of a refusal quotes the input.
 */
export function parseWhen(text: string, nowMs: number, what = 'date'): WhenResult {
  const t = text.trim();
  const duration = parseDuration(t);
  if (duration !== undefined) return { ok: true, ms: nowMs + duration };
  if (DAY.test(t)) {
    const start = parseDayMs(t);
    return start === undefined ? { ok: false, message: `invalid ${what} "${text}": that day does not exist` } : { ok: true, ms: lastMsOf(start) };
  }
  const ms = parseInstantMs(t);
  if (ms !== undefined) return { ok: true, ms };
  if (INSTANT.test(t)) return { ok: false, message: `invalid ${what} "${text}": that date or time does not exist` };
  return { ok: false, message: `invalid ${what} "${text}": use a duration (30d, 12h), a day (2027-01-31, which ends at ${END_OF_DAY_TEXT}) or an ISO date-time (2027-01-31T12:00:00Z)` };
}

// A fast yes for records exactly as keygate writes them. A replica reads 100,000 records at
// start-up and after every reconnect; run through zod one by one, they cost the better part of
// a second and as many short-lived objects again. A record keygate itself wrote has every key of
// its schema (store/schema.ts), no other, and values of the right types, so it can be checked by
// hand and kept as it came out of JSON.parse. Anything else — a missing key zod would default,
// an unknown key, a wrong type, a date that does not exist — gets no from here and goes to zod,
// which decides, fills in defaults and words the problem. This check may only ever say yes to
// what zod also accepts unchanged; test/store/record-check.test.ts holds it to that.
import { isDay, isInstant } from '../config/dates.js';
import { ACCOUNT_NAME } from './schema.js';
import type { KindCode } from './inventory.js';

type Check = (v: unknown) => boolean;

const str: Check = (v) => typeof v === 'string';
const nonEmpty: Check = (v) => typeof v === 'string' && v.length > 0;
const strOrNull: Check = (v) => v === null || typeof v === 'string';
const names: Check = (v) => Array.isArray(v) && v.every(nonEmpty);
const namesOrNull: Check = (v) => v === null || names(v);

/** Two or more ASCII digits at `from` as a number, or -1. */
function digits(s: string, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * An instant as Date#toISOString writes it (YYYY-MM-DDTHH:MM:SS.sssZ, what keygate stores) is
 * checked field by field here, by the rules of isInstant (config/dates.ts: a year from 1970 to
 * 9999, a day that exists, 23:59:59 at most) without building a Date; any other form goes to
 * isInstant itself.
 */
const instant: Check = (v) => {
  if (typeof v !== 'string') return false;
  if (v.length === 24 && v[4] === '-' && v[7] === '-' && v[10] === 'T' && v[13] === ':' && v[16] === ':' && v[19] === '.' && v[23] === 'Z') {
    const y = digits(v, 0, 4);
    const mo = digits(v, 5, 2);
    const d = digits(v, 8, 2);
    if (y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 && digits(v, 11, 2) >= 0 && digits(v, 11, 2) <= 23 && digits(v, 14, 2) >= 0 && digits(v, 14, 2) <= 59 && digits(v, 17, 2) >= 0 && digits(v, 17, 2) <= 59 && digits(v, 20, 3) >= 0) {
      const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
      if (d <= (mo === 2 && leap ? 29 : DAYS[mo - 1]!)) return true;
    }
  }
  return isInstant(v);
};
const instantOrNull: Check = (v) => v === null || instant(v);

const SHAPES: Record<KindCode, Record<string, Check>> = {
  a: {
    name: (v) => typeof v === 'string' && ACCOUNT_NAME.test(v) && v.trim() === v,
    description: str,
    owner: str,
    endDate: (v) => v === null || (typeof v === 'string' && isDay(v)),
    roles: names,
    scopes: names,
    policy: strOrNull,
    disabled: (v) => typeof v === 'boolean',
    createdAt: instant,
    updatedAt: instant,
  },
  t: {
    id: (v) => typeof v === 'string' && /^tok_[0-9A-Za-z]{1,32}$/.test(v),
    account: nonEmpty,
    label: str,
    hash: (v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v),
    environment: strOrNull,
    scopes: namesOrNull,
    policy: strOrNull,
    status: (v) => v === 'active' || v === 'revoked',
    createdAt: instant,
    expiresAt: instantOrNull,
    revokedAt: instantOrNull,
    revokeReason: strOrNull,
    rotatedFrom: strOrNull,
    rotatedTo: strOrNull,
  },
  c: {
    id: nonEmpty,
    account: nonEmpty,
    match: (v) => v === 'fingerprint' || v === 'cn' || v === 'dns' || v === 'uri',
    value: nonEmpty,
    nickname: str,
    endDate: instantOrNull,
    scopes: namesOrNull,
    policy: strOrNull,
    createdAt: instant,
    serial: strOrNull,
    notAfter: instantOrNull,
  },
};

const SIZES: Record<KindCode, number> = { a: Object.keys(SHAPES.a).length, t: Object.keys(SHAPES.t).length, c: Object.keys(SHAPES.c).length };

/** True when `v` is a complete record of its kind that the schema accepts as it is. */
export function isCompleteRecord(code: KindCode, v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return false;
  const shape = SHAPES[code];
  const keys = Object.keys(v);
  if (keys.length !== SIZES[code]) return false;
  for (const k of keys) {
    const check = Object.hasOwn(shape, k) ? shape[k] : undefined;
    if (check === undefined || !check((v as Record<string, unknown>)[k])) return false;
  }
  return true;
}

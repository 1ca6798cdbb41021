// API token format: kg_[<env>_]<body><check>
//   body  = 33 base62 characters encoding 24 bytes from crypto.randomBytes (192 bits)
//   check = 6 base62 characters of the CRC32 of everything before it
// The checksum lets keygate refuse a mistyped or truncated token before any lookup, and lets
// secret scanners recognise a real token with few false positives. Only SHA-256(token) is
// stored; the token itself exists only in the CLI's output and in the caller's hands.
import { hash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_LEN = 33;
const CHECK_LEN = 6;
const TOKEN = /^kg_(?:([a-z][a-z0-9]{0,15})_)?([0-9A-Za-z]{33})([0-9A-Za-z]{6})$/;

export function base62(value: bigint, width: number): string {
  let out = '';
  let v = value;
  while (v > 0n) {
    out = ALPHABET[Number(v % 62n)] + out;
    v /= 62n;
  }
  return out.padStart(width, '0');
}

/** Base62 of the CRC32, in plain numbers: it runs on every request, BigInt would cost more. */
function checksum(text: string): string {
  let v = crc32(text);
  let out = '';
  for (let i = 0; i < CHECK_LEN; i++) {
    out = ALPHABET[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out;
}

export function tokenPrefix(environment: string | null): string {
  return environment ? `kg_${environment}_` : 'kg_';
}

/** A new secret token. `environment` is embedded in the prefix. */
export function mintToken(environment: string | null): string {
  const body = base62(BigInt('0x' + randomBytes(24).toString('hex')), BODY_LEN);
  const head = tokenPrefix(environment) + body;
  return head + checksum(head);
}

export type ParsedToken = { ok: true; environment: string | null } | { ok: false };

const MALFORMED: ParsedToken = { ok: false };

/** Checks shape and checksum only; says nothing about whether the token exists. */
export function parseToken(token: string): ParsedToken {
  if (token.length > 64) return MALFORMED;
  const m = TOKEN.exec(token);
  if (!m) return MALFORMED;
  const head = token.slice(0, token.length - CHECK_LEN);
  if (checksum(head) !== m[3]) return MALFORMED;
  return { ok: true, environment: m[1] ?? null };
}

/** A token's shape anywhere in a text (checksum not checked): kg_, an optional environment, 39 base62. */
const TOKEN_SHAPE = /kg_(?:[a-z][a-z0-9]{0,15}_)?[0-9A-Za-z]{39}/;

/**
 * The first substring of `text` shaped like a keygate token, whatever surrounds it. Used where a
 * token must never travel on (a query string, an Authorization header of another scheme):
 * a token with a typo is still a secret, so the checksum is not asked for here. Cheap on the
 * common case: no `kg_` in the text, no regular expression run.
 */
export function findTokenShape(text: string): string | undefined {
  if (text.indexOf('kg_') === -1) return undefined;
  return TOKEN_SHAPE.exec(text)?.[0];
}

/** The only form in which a token is stored: lowercase hex SHA-256. */
export function hashToken(token: string): string {
  return hash('sha256', token, 'hex');
}

/** Public, log-safe identifier of a credential record. */
export function newId(prefix: 'tok' | 'crt'): string {
  return `${prefix}_${base62(BigInt('0x' + randomBytes(10).toString('hex')), 14)}`;
}

export const TOKEN_ID_PATTERN = /^tok_[0-9A-Za-z]{14}$/;

// Well-formed keygate tokens that keygate never issued, written from the documented format
// (docs/configuration.md, "Token format": kg_[<environment>_], 33 base62 characters, then 6
// base62 characters of the CRC32 of everything before them) the way a secret scanner or an
// attacker would — not imported from src/, so that the attack tests stay black-box. The
// tests that use them check that keygate reads them as well-formed (unknown, not malformed),
// so a change of format fails loudly here rather than silently weakening a test.
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function base62(value: bigint, width: number): string {
  let out = '';
  for (let v = value; v > 0n; v /= 62n) out = BASE62[Number(v % 62n)] + out;
  return out.padStart(width, '0');
}

/** A token with a valid checksum for `environment` (null: none). */
export function forgeToken(environment: string | null = null): string {
  const head = `kg_${environment ? `${environment}_` : ''}${base62(BigInt('0x' + randomBytes(24).toString('hex')), 33)}`;
  return head + base62(BigInt(crc32(head)), 6);
}

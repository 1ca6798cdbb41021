// The few gRPC wire rules keygate needs as a proxy (grpc/grpc PROTOCOL-HTTP2.md): which
// requests are gRPC, how a refusal's HTTP status becomes a grpc-status, how grpc-message is
// percent-encoded, and how grpc-timeout is read and written. No gRPC library: keygate never
// decodes a message, it only answers and relays.

/** `application/grpc`, `application/grpc+proto`, `application/grpc;…`; not `application/grpc-web`. */
export function isGrpcContentType(ct: string | undefined): boolean {
  if (ct === undefined || !ct.startsWith('application/grpc')) return false;
  const next = ct.charCodeAt(16);
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */;
}

/** gRPC status codes keygate answers with (google.rpc.Code). */
export const GRPC = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  PERMISSION_DENIED: 7,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/**
 * The grpc-status of one of keygate's refusals, from its HTTP status. 401/403/429/503/504 are
 * the contract (SPEC §4.7). 421 (the :authority names a host of the other mode) is UNAVAILABLE:
 * the call reached the wrong endpoint and may succeed on the right one, which is what gRPC
 * clients retry on; grpc-js would map an HTTP 421 to UNKNOWN. 502 is UNAVAILABLE as in gRPC's
 * own HTTP mapping, 504 is DEADLINE_EXCEEDED (keygate's deadline ran out, not the caller's).
 */
export function grpcStatusFor(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GRPC.INVALID_ARGUMENT;
    case 401:
      return GRPC.UNAUTHENTICATED;
    case 403:
      return GRPC.PERMISSION_DENIED;
    case 404:
      return GRPC.UNIMPLEMENTED; // no route: what a server answers for a method it does not have
    case 408:
    case 504:
      return GRPC.DEADLINE_EXCEEDED;
    case 413:
    case 429:
    case 431:
      return GRPC.RESOURCE_EXHAUSTED;
    case 421:
    case 502:
    case 503:
      return GRPC.UNAVAILABLE;
    default:
      return GRPC.INTERNAL;
  }
}

/**
 * grpc-message is percent-encoded UTF-8: every byte outside 0x20–0x7E, and `%` itself. Not
 * encodeURIComponent, which also encodes `/`, `;`, `:` … that clients then show encoded.
 */
export function encodeGrpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + (b < 16 ? '0' : '') + b.toString(16).toUpperCase();
  return out;
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** grpc-timeout (`1-8 digits` + `H M S m u n`) in milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined || value.length < 2 || value.length > 9) return undefined;
  const unit = TIMEOUT_UNIT_MS[value[value.length - 1]!];
  const digits = value.slice(0, -1);
  if (unit === undefined || !/^\d+$/.test(digits)) return undefined;
  return Number(digits) * unit;
}

/** The remaining budget for the upstream, as grpc-timeout: milliseconds while they fit in 8 digits. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.floor(ms));
  return whole < 100_000_000 ? `${whole}m` : `${Math.floor(whole / 1_000)}S`;
}

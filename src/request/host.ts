// What a valid Host (or :authority) is: exactly host[:port] (RFC 9110 §7.2, RFC 3986 §3.2.2),
// read strictly, because keygate forwards it as x-forwarded-host and an upstream may build
// links or route on it. A host is a DNS-style name (letters, digits, "-", ".", "_"), an IPv4
// address, or an IPv6 literal in brackets; a port is 1–5 digits up to 65535. User info, a
// path, a list, spaces and anything percent-encoded are refused: each is a way to make two
// readers see two hosts.
import { isIPv6 } from 'node:net';

/** Longest DNS name (RFC 1035 §2.3.4), plus room for ":65535". */
const MAX_HOST = 253 + 6;

function isNameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95;
}

function validPort(text: string): boolean {
  if (text.length === 0 || text.length > 5) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return Number(text) <= 65535;
}

export function isValidHost(host: string): boolean {
  if (host.length === 0 || host.length > MAX_HOST) return false;
  let rest: string;
  if (host.charCodeAt(0) === 91) {
    const end = host.indexOf(']');
    if (end === -1 || !isIPv6(host.slice(1, end))) return false;
    rest = host.slice(end + 1);
  } else {
    const colon = host.indexOf(':');
    const name = colon === -1 ? host : host.slice(0, colon);
    if (name.length === 0 || name.length > 253) return false;
    for (let i = 0; i < name.length; i++) if (!isNameChar(name.charCodeAt(i))) return false;
    rest = colon === -1 ? '' : host.slice(colon);
  }
  if (rest === '') return true;
  return rest.charCodeAt(0) === 58 && validPort(rest.slice(1));
}

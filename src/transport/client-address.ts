// The caller's address as keygate audits and rate-limits it: the TCP peer, never a header the
// caller could set. IPv4-mapped IPv6 (`::ffff:10.0.0.1`, how a dual-stack socket reports an
// IPv4 peer) is shown as the IPv4 address, so one client has one spelling.
export function clientAddress(remote: string | undefined): string {
  const ip = remote ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

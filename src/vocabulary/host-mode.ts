// The SNI host name decides how a connection authenticates: names with the client-auth prefix
// require a client certificate, all others an API token. A request whose Host (or :authority)
// names a host of the other mode is answered 421 (RFC 9110 §15.5.20), so that a token client
// cannot reach a client-certificate host by overriding Host, nor the reverse. The listener
// picks the secure context by this rule and the request path checks Host by it.

export type HostMode = 'api-key' | 'clientauth';
export type AuthMethod = 'api-key' | 'mtls';

export function modeOfName(name: string, prefix: string): HostMode {
  return name.length > prefix.length && name.slice(0, prefix.length).toLowerCase() === prefix ? 'clientauth' : 'api-key';
}

/** Host header without port; IPv6 literals keep their brackets. */
export function hostName(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

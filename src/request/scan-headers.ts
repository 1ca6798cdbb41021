// Strip, then set (Envoy's SANITIZE_SET): one pass over the raw request headers removes
// everything a caller could use to forge identity or confuse the hop (credential headers,
// x-keygate-*, x-forwarded-client-cert, hop-by-hop headers, forwarding headers we set
// ourselves, HTTP/2 pseudo-headers) and keeps what identify needs. The forwarder then adds
// keygate's headers to the list this pass built.
import type { ScannedHeaders } from '../vocabulary/context.js';

export type { ScannedHeaders };

/** Removed from requests before forwarding (RFC 9110 §7.6.1 hop-by-hop, plus ours). */
const DROP_REQUEST = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'expect', 'http2-settings',
  'x-forwarded-client-cert', 'x-forwarded-proto', 'x-forwarded-host',
  // Client-address headers keygate does not set: a caller could forge them, and an upstream
  // that trusted one would log or rate-limit the wrong address. x-forwarded-for is kept and
  // appended to instead.
  'forwarded', 'x-real-ip',
]);

const SANE_REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

/** A client's x-request-id is kept only when it is short and plain enough to log and echo. */
export function isSaneRequestId(value: string): boolean {
  return SANE_REQUEST_ID.test(value);
}

export function scanRequestHeaders(raw: readonly string[]): ScannedHeaders {
  const forward: string[] = [];
  let apiKey: string | undefined;
  let apiKeyCount = 0;
  let authorization: string | undefined;
  let authorizationCount = 0;
  let host: string | undefined;
  let hostCount = 0;
  let requestId: string | undefined;
  let forwardedFor: string | undefined;
  let hasBody = false;
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58) {
      // HTTP/2 pseudo-headers describe this hop's request; the upstream request gets its own.
      // :authority stands for Host, and the upstream sees it as Host (as Envoy does).
      if (name === ':authority' && hostCount++ === 0) {
        host = value;
        forward.push('host', value);
      }
      continue;
    }
    switch (name) {
      case 'host':
        // One Host travels on; a second one makes the request ambiguous (refused before forwarding).
        if (hostCount++ === 0) {
          host = value;
          forward.push('host', value);
        }
        continue;
      case 'x-api-key':
        apiKeyCount++;
        apiKey = value;
        continue;
      case 'authorization':
        authorizationCount++;
        authorization = value;
        continue;
      case 'x-request-id':
        if (requestId === undefined && isSaneRequestId(value)) requestId = value;
        continue;
      case 'x-forwarded-for':
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case 'content-length':
        if (value !== '0') hasBody = true;
        break;
      case 'transfer-encoding':
        hasBody = true;
        continue;
      case 'connection':
        // Every Connection header counts: a name listed in the first must not survive because
        // a second one follows.
        connection = connection === undefined ? value : `${connection},${value}`;
        continue;
    }
    if (DROP_REQUEST.has(name) || name.startsWith('x-keygate-')) continue;
    forward.push(name, value);
  }
  if (connection !== undefined) dropConnectionListed(forward, connection);
  return { forward, apiKey, apiKeyCount, authorization, authorizationCount, host, hostCount, requestId, forwardedFor, hasBody };
}

/** Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1). */
function dropConnectionListed(forward: string[], connection: string): void {
  const listed = new Set(connection.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t && t !== 'close' && t !== 'keep-alive'));
  if (listed.size === 0) return;
  for (let i = forward.length - 2; i >= 0; i -= 2) if (listed.has(forward[i]!)) forward.splice(i, 2);
}

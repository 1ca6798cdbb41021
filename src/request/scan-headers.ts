// Strip, then set (Envoy's SANITIZE_SET): one pass over the raw request headers removes
// everything a caller could use to forge identity or confuse the hop (credential headers,
// x-keygate-*, x-forwarded-client-cert, hop-by-hop headers, forwarding headers we set
// ourselves, HTTP/2 pseudo-headers, names with "_", method and URL overrides) and keeps what
// identify and the front stages need. The forwarder then adds keygate's headers to the list
// this pass built. The rules that depend on keygate.yaml are compiled once per config
// (compileHeaderScan); the pass itself allocates nothing beyond the forward list.
import { OVERRIDE_HEADERS, type KeygateConfig } from '../config/schema.js';
import { findTokenShape } from '../store/token-format.js';
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

const OVERRIDES: ReadonlySet<string> = new Set(OVERRIDE_HEADERS);

/**
 * Every name keygate reads, sets or strips. Under `headersWithUnderscores: allow` a name with
 * "_" still never passes when reading "_" as "-" gives one of these: `x_api_key`,
 * `x_request_id` or `content_length` would otherwise reach a framework that maps them.
 */
function ownedName(dashed: string): boolean {
  return DROP_REQUEST.has(dashed) || OVERRIDES.has(dashed) || dashed.startsWith('x-keygate-') || OWNED.has(dashed);
}
const OWNED = new Set(['host', 'x-api-key', 'authorization', 'x-request-id', 'x-forwarded-for', 'content-length', 'content-type']);

const SANE_REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

/** A client's x-request-id is kept only when it is short and plain enough to log and echo. */
export function isSaneRequestId(value: string): boolean {
  return SANE_REQUEST_ID.test(value);
}

const BEARER = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i;
const BASIC = /^Basic[ \t]+([A-Za-z0-9+/=]{1,4096})[ \t]*$/i;

/**
 * The credential an Authorization value presents: a Bearer value (whatever it is; identify
 * decides), else a keygate token under any other scheme or as the bare value — a word that
 * starts with `kg_`, or a token's shape anywhere in it, also inside Basic's base64. Such a
 * token is consumed like a Bearer token and never forwarded. undefined: the value carries no
 * credential of keygate's (the upstream's own Basic or Bearer travels on).
 */
export function authorizationCredential(value: string): string | undefined {
  const bearer = BEARER.exec(value);
  if (bearer) return bearer[1];
  if (value.indexOf('kg_') !== -1) {
    for (const word of value.trim().split(/[ \t]+/, 8)) if (word.startsWith('kg_')) return word;
    return findTokenShape(value);
  }
  const basic = BASIC.exec(value);
  return basic ? findTokenShape(Buffer.from(basic[1]!, 'base64').toString('latin1')) : undefined;
}

export type UnderscoreRule = KeygateConfig['listen']['headersWithUnderscores'];

export interface HeaderScanRules {
  /** Names with "_": dropped, refused (the head stage answers 400) or passed. */
  readonly underscores: UnderscoreRule;
}

export const DEFAULT_SCAN_RULES: HeaderScanRules = { underscores: 'drop' };

export type HeaderScan = (raw: readonly string[]) => ScannedHeaders;

/** The scan for one config. */
export function compileHeaderScan(rules: HeaderScanRules): HeaderScan {
  return (raw) => scanRequestHeaders(raw, rules);
}

export function scanRequestHeaders(raw: readonly string[], rules: HeaderScanRules = DEFAULT_SCAN_RULES): ScannedHeaders {
  const allowUnderscores = rules.underscores === 'allow';
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
  let expect: string | undefined;
  let underscored = 0;
  let overrides: string[] | undefined;
  let authToken: string | undefined;
  let contentLength: number | undefined;
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
        // One Host travels on; a second one makes the request ambiguous (the head stage refuses it).
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
        authToken ??= authorizationCredential(value);
        continue;
      case 'x-request-id':
        if (requestId === undefined && isSaneRequestId(value)) requestId = value;
        continue;
      case 'x-forwarded-for':
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case 'content-length':
        if (value !== '0') hasBody = true;
        contentLength = Number(value);
        break;
      case 'transfer-encoding':
        hasBody = true;
        continue;
      case 'connection':
        // Every Connection header counts: a name listed in the first must not survive because
        // a second one follows.
        connection = connection === undefined ? value : `${connection},${value}`;
        continue;
      case 'expect':
        // Kept for the head stage (anything but 100-continue is a 417), never forwarded.
        expect = expect === undefined ? value : `${expect}, ${value}`;
        continue;
    }
    if (DROP_REQUEST.has(name) || name.startsWith('x-keygate-')) continue;
    // Not a field name (RFC 9110 tokens have no white space); Node's parsers refuse these, and
    // a name that reads as one of keygate's once trimmed must not pass if one ever gets here.
    if (name.length === 0 || name.charCodeAt(0) <= 32 || name.charCodeAt(name.length - 1) <= 32) continue;
    if (OVERRIDES.has(name)) {
      // Held aside: the route decides whether its upstream gets them (routes[].allowOverrideHeaders).
      (overrides ??= []).push(name, value);
      continue;
    }
    if (name.indexOf('_') !== -1) {
      underscored++;
      if (!allowUnderscores || ownedName(name.replaceAll('_', '-'))) continue;
    }
    forward.push(name, value);
  }
  if (connection !== undefined) dropConnectionListed(forward, connection);
  return { forward, apiKey, apiKeyCount, authorization, authorizationCount, authToken, host, hostCount, requestId, forwardedFor, hasBody, contentLength: Number.isSafeInteger(contentLength) ? contentLength : undefined, expect, underscored, overrides };
}

/** Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1). */
function dropConnectionListed(forward: string[], connection: string): void {
  const listed = new Set(connection.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t && t !== 'close' && t !== 'keep-alive'));
  if (listed.size === 0) return;
  for (let i = forward.length - 2; i >= 0; i -= 2) if (listed.has(forward[i]!)) forward.splice(i, 2);
}

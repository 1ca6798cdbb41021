// One typed request context, shared by the stages (never through request headers). Each stage
// narrows it: after the target stage a request has a route, after identify a principal, after
// limit its limit answer. The chain builder (pipeline/chain.ts) checks at compile time that a
// stage only runs after the stages whose output it reads.
import type { KeygateError } from '../errors/keygate-error.js';
import type { Exchange } from './exchange.js';
import type { AuthMethod, HostMode } from './host-mode.js';
import type { TakeResult } from './limits.js';
import type { PeerIdentity, Principal, Rule } from './principal.js';

/** What one pass over the raw request headers found (request/scan-headers.ts). */
export interface ScannedHeaders {
  /** Headers for the upstream as a flat [name, value, …] list, already sanitized. */
  readonly forward: string[];
  readonly apiKey: string | undefined;
  readonly apiKeyCount: number;
  readonly authorization: string | undefined;
  readonly authorizationCount: number;
  /**
   * The credential Authorization presents: a Bearer value, or a keygate token under any other
   * scheme or bare (consumed like Bearer, never forwarded). undefined: none of keygate's.
   */
  readonly authToken: string | undefined;
  /** Host, or :authority on HTTP/2. */
  readonly host: string | undefined;
  readonly hostCount: number;
  /** The client's x-request-id, if sane. */
  readonly requestId: string | undefined;
  readonly forwardedFor: string | undefined;
  /** Set from the headers; the request path overrides it when the transport knows (HTTP/2 END_STREAM). */
  hasBody: boolean;
  /** Content-Length, when sent (a chunked body has none). */
  readonly contentLength: number | undefined;
  /** Expect, never forwarded (the head stage answers anything but 100-continue with 417). */
  readonly expect: string | undefined;
  /** Header names with "_" seen (dropped unless listen.headersWithUnderscores says otherwise). */
  readonly underscored: number;
  /** Method and URL override headers, held aside as [name, value, …] for the route to allow. */
  readonly overrides: string[] | undefined;
}

/** A WebSocket tunnel, as audit records it when it closes (forward/tunnel.ts fills it in). */
export interface TunnelStats {
  /** Bytes after the 101, frame headers included, each way. */
  bytesFromClient: number;
  bytesFromUpstream: number;
  /** Who ended it: the side that sent the first Close frame or closed the connection, or keygate (idle, drain). */
  closedBy: 'client' | 'upstream' | 'idle' | 'drain' | 'error' | undefined;
}

/** A route as the decision and the audit see it; its forwarder is compiled into its chain. */
export interface RouteInfo {
  readonly index: number;
  readonly pathPrefix: string;
  readonly public: boolean;
  readonly timeoutMs: number;
  /** The upstream origin, for explain and logs. */
  readonly upstream: string;
  /** Override headers this route forwards (routes[].allowOverrideHeaders), lower case. */
  readonly allowOverrideHeaders: readonly string[];
}

/** In a dry run: the credential named by reference instead of presented (explain). */
export interface CredentialReference {
  readonly account: string;
  /** A token id of that account; without it, the account's own scopes and policy. */
  readonly token?: string;
}

export interface RequestContext {
  readonly x: Exchange;
  /** performance.now() at the request head. */
  readonly startedAt: number;
  /** Wall clock at the request head, epoch ms (one clock read per request). */
  readonly nowMs: number;
  readonly requestId: string;
  readonly clientIp: string;
  /** Decided by the TLS server name (or the dedicated client-certificate port). */
  readonly mode: HostMode;
  /** Host or :authority as sent ('' when absent). */
  readonly host: string;
  readonly method: string;
  readonly headers: ScannedHeaders;
  readonly reference?: CredentialReference;
  /** Normalized path (what was checked is what is forwarded) and raw query string. */
  path: string;
  query: string;
  /** For audit: a short reason of the decision. */
  reason: string;
  route?: RouteInfo;
  auth?: AuthMethod;
  principal?: Principal;
  peer?: PeerIdentity;
  /** The limit stage's answer; null when no policy applies. */
  limit?: TakeResult | null;
  /** The refusal identify found, kept also when the failure budget answered 429 instead (metrics). */
  authFailure?: KeygateError;
  /** The rule that allowed the request. */
  rule?: Rule;
  /** Shadow mode: what enforcement would have said. */
  shadowDenied?: string;
  /** keygate-credential-expires, when the credential is within warnBefore of its end. */
  expiresHeader?: string;
  /** Set when the credential is close to its end (audited at most once a day). */
  warning?: string;
  /**
   * The error keygate answered with, its own or an upstream failure; unset when the upstream's
   * answer was passed on. Audit and metrics classify the request by it, not by the status
   * line, which an upstream failing mid-body has already sent as 200.
   */
  answered?: KeygateError;
  /** Set by the tunnel terminal once the upstream switched protocols. */
  tunnel?: TunnelStats;
}

/** After the target stage: a normalized path and the route it takes. */
export interface Routed extends RequestContext {
  readonly route: RouteInfo;
}

/** After identify: who is calling, and how they proved it. */
export interface Identified extends Routed {
  readonly principal: Principal;
  readonly auth: AuthMethod;
}

/** After limit: the bucket was consulted (null: no policy applies). */
export interface Limited extends Identified {
  readonly limit: TakeResult | null;
}

// One typed request context, shared by the stages (never through request headers).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRule } from '../authorize/rules.js';
import type { CredentialEntry } from '../identify/credential-index.js';
import type { PeerIdentity } from '../identify/peer-certificate.js';
import type { CompiledRoute } from '../forward/routes.js';
import type { TakeResult } from '../ratelimit/token-bucket.js';
import type { ScannedHeaders } from '../forward/headers.js';
import type { Runtime } from './runtime.js';
import type { KeygateError } from '../errors/keygate-error.js';

export type HostMode = 'api-key' | 'clientauth';
export type AuthMethod = 'api-key' | 'mtls';

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The runtime this request started with; a reload mid-request does not change it. */
  readonly rt: Runtime;
  /** performance.now() at the request head. */
  readonly startedAt: number;
  /** Wall clock at the request head, epoch ms (one Date.now() per request). */
  readonly nowMs: number;
  readonly requestId: string;
  readonly clientIp: string;
  /** Decided by the TLS server name (or the dedicated client-certificate port). */
  readonly mode: HostMode;
  readonly host: string;
  readonly method: string;
  readonly headers: ScannedHeaders;
  /** Normalized path (what was checked is what is forwarded) and raw query string. */
  path: string;
  query: string;
  route?: CompiledRoute;
  credential?: CredentialEntry;
  auth?: AuthMethod;
  peer?: PeerIdentity;
  /** The rule that allowed the request. */
  rule?: CompiledRule;
  /** Shadow mode: what enforcement would have said. */
  shadowDenied?: string;
  limit?: TakeResult;
  /** For audit: a short reason of the decision. */
  reason: string;
  /**
   * The error keygate answered with, its own or an upstream failure; unset when the upstream's
   * answer was passed on. Audit and metrics classify the request by it, not by the status
   * line, which an upstream failing mid-body has already sent as 200.
   */
  answered?: KeygateError;
  /** keygate-credential-expires, when the credential is within warnBefore of its end. */
  expiresHeader?: string;
  /** Set when the credential is close to its end (audited at most once a day). */
  warning?: string;
}

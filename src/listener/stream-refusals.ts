// Refusals the HTTP/2 listener makes itself, before a stream reaches the request path (a header
// list over listen.limits.maxHeaderSize): the counterpart of parser-refusals.ts for HTTP/1.1.
// The answer goes through the one problem writer, so a gRPC call gets a gRPC answer; the
// request is audited and counted like any other.
import { randomUUID } from 'node:crypto';
import type { KeygateError } from '../errors/keygate-error.js';
import type { AuditSink } from '../observe/audit.js';
import type { KeygateMetrics } from '../observe/metrics.js';
import { clientAddress } from '../transport/client-address.js';
import { sendProblem } from '../transport/problem.js';
import type { Exchange } from '../vocabulary/exchange.js';

export type StreamRefuser = (x: Exchange, err: KeygateError) => void;

export function createStreamRefuser(deps: { metrics: KeygateMetrics; audit: AuditSink }): StreamRefuser {
  return (x, err) => {
    const requestId = randomUUID();
    sendProblem(x, err, requestId);
    deps.metrics.observeRequest('', '', 'bad_request', 0, x.protocol);
    deps.audit.request({
      requestId,
      account: null,
      credential: null,
      auth: null,
      method: x.method,
      protocol: x.protocol,
      // Neither path nor host: the head was refused for its size, and nothing in it was read.
      host: '',
      path: '',
      status: err.status,
      decision: 'deny',
      reason: err.code,
      durationMs: 0,
      clientIp: clientAddress(x.tls?.remoteAddress),
    });
  };
}

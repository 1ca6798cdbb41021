// Audit log: one JSON line per request and per management action (SPEC §6). Lines are
// buffered and written asynchronously (line-writer.ts), so the request path never waits on the
// disk; flush() is called on reload and shutdown. Fields never include a secret, a query
// string or a header value.
import type { Protocol } from '../vocabulary/exchange.js';
import { LineWriter } from './line-writer.js';

export interface RequestAudit {
  requestId: string;
  account: string | null;
  credential: string | null;
  auth: 'api-key' | 'mtls' | null;
  method: string;
  /** What the request spoke: http/1.1 (when absent), h2, grpc, websocket. */
  protocol?: Protocol;
  host: string;
  path: string;
  status: number;
  decision: 'allow' | 'deny' | 'error';
  reason: string;
  durationMs: number;
  clientIp: string;
  route?: number;
  warning?: string;
  /** WebSocket tunnels: bytes after the 101 each way (frame headers included), and who ended it. */
  bytesFromClient?: number;
  bytesFromUpstream?: number;
  closedBy?: string;
}

export interface ManagementAudit {
  /** e.g. token.created, account.disabled, config.reloaded */
  event: string;
  /** Who did it: `cli:<user>`, `admin:<account>`, or `keygate` for the proxy itself. */
  actor: string;
  /** What it was done to: an account name, credential id or file. */
  target?: string;
  [field: string]: unknown;
}

export interface AuditSink {
  request(entry: RequestAudit): void;
  event(entry: ManagementAudit): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Where audit text goes: buffered, written in the background, whole lines as given. */
export interface AuditDestination {
  /** Appends text made of whole, newline-terminated lines. */
  write(text: string): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens `output` (stdout, stderr or a file, appended to). One process writes it: with
 * `workers` > 1 that is the supervisor, which receives the workers' lines (workers/).
 * Lines are copied into large buffers and written in the background (line-writer.ts): at
 * least 32 KiB per write under load, and at least once a second.
 */
export function openAuditDestination(output: string): AuditDestination {
  const fd = output === 'stdout' ? 1 : output === 'stderr' ? 2 : undefined;
  const w = new LineWriter(fd !== undefined ? { fd } : { file: output });
  return { write: (text) => w.write(text), flush: () => w.flush(), close: () => w.close() };
}

export function createAuditSink(output: string): AuditSink {
  const dest = openAuditDestination(output);
  // Each line is serialized here rather than through a pino logger: the audit format is a
  // contract (SPEC §6), with `time` first and no logger fields (level, pid, msg) mixed in.
  const clock = isoClock();
  return {
    request: (entry) => dest.write(requestLine(entry, clock())),
    event: (entry) => dest.write(JSON.stringify({ time: clock(), ...entry }) + '\n'),
    flush: dest.flush,
    close: dest.close,
  };
}

/** The ISO-8601 time, formatted at most once per millisecond (a busy proxy asks many times). */
export function isoClock(): () => string {
  let lastMs = -1;
  let last = '';
  return () => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      last = new Date(now).toISOString();
    }
    return last;
  };
}

/**
 * Longest value kept of each field a caller controls (docs/observability.md): a path or a Host
 * is cut there and ends with "…", so that one request cannot write a 16 KiB audit line.
 * x-request-id is taken from the client only when it is at most 128 plain characters
 * (request/scan-headers.ts), the method only from the HTTP parser's fixed list.
 */
export const AUDIT_LIMITS = { path: 1024, host: 255, requestId: 128 } as const;

function bounded(text: string, max: number): string {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

/**
 * One request line, fields in a fixed order. One object literal through JSON.stringify: V8's
 * fast serializer gives a flat string (a hand-concatenated line would be a rope that the
 * buffered writer then has to flatten, which measured slower), every string is escaped, so a
 * caller-chosen path or host cannot break the line.
 */
export function requestLine(e: RequestAudit, time: string): string {
  return (
    JSON.stringify({
      time,
      event: 'request',
      requestId: bounded(e.requestId, AUDIT_LIMITS.requestId),
      account: e.account,
      credential: e.credential,
      auth: e.auth,
      method: bounded(e.method, 32),
      protocol: e.protocol ?? 'http/1.1',
      host: bounded(e.host, AUDIT_LIMITS.host),
      path: bounded(e.path, AUDIT_LIMITS.path),
      status: e.status,
      decision: e.decision,
      reason: e.reason,
      durationMs: e.durationMs,
      clientIp: e.clientIp,
      route: e.route,
      warning: e.warning,
      bytesFromClient: e.bytesFromClient,
      bytesFromUpstream: e.bytesFromUpstream,
      closedBy: e.closedBy,
    }) + '\n'
  );
}

/** Collects audit entries in memory (tests, `keygate check`). */
export class MemoryAuditSink implements AuditSink {
  readonly entries: Array<Record<string, unknown>> = [];
  request(entry: RequestAudit): void {
    this.entries.push({ event: 'request', ...entry });
  }
  event(entry: ManagementAudit): void {
    this.entries.push({ ...entry });
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

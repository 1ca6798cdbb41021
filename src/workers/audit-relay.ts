// Audit lines with `workers` > 1: every worker hands its lines to the supervisor, which alone
// writes audit.output. One writer is what keeps each line whole in one stream for every kind
// of output: a file, but also stdout or stderr when those are a pipe (a container's log),
// where writes from several processes interleave as soon as one is larger than PIPE_BUF
// (4 KiB) or the pipe takes only part of it — and the buffered writer's batches are larger.
// Lines go over IPC in batches (at least every 250 ms, or once 16 KiB are pending), so the
// relay costs one message per batch, not one per request; the supervisor then buffers and
// writes them as a single process does (observe/audit.ts).
//
// Each line gains `"worker":N` (which process served the request or made the change), set by
// the supervisor's slot number, stable across replacements.
import { isoClock, requestLine, type AuditSink, type ManagementAudit, type RequestAudit } from '../observe/audit.js';

export interface RelayOptions {
  /** Sends a batch; resolves once it is handed to the IPC channel. */
  send: (lines: string) => Promise<void>;
  worker: number;
  /** A batch goes out once this many bytes are pending. Default 16384. */
  maxBytes?: number;
  /** …and at least this often. Default 250 ms. */
  intervalMs?: number;
}

export class RelayAuditSink implements AuditSink {
  private pending = '';
  private readonly clock = isoClock();
  private readonly suffix: string;
  private readonly timer: NodeJS.Timeout;
  private sending: Promise<void> = Promise.resolve();

  constructor(private readonly opts: RelayOptions) {
    this.suffix = `,"worker":${Math.trunc(opts.worker)}}\n`;
    this.timer = setInterval(() => void this.flush(), opts.intervalMs ?? 250);
    this.timer.unref();
  }

  request(entry: RequestAudit): void {
    // requestLine ends with "}\n": the field goes in before the brace, without a second stringify.
    const line = requestLine(entry, this.clock());
    this.append(line.slice(0, -2) + this.suffix);
  }

  event(entry: ManagementAudit): void {
    this.append(JSON.stringify({ time: this.clock(), ...entry, worker: this.opts.worker }) + '\n');
  }

  /** Sends what is pending; resolves when every batch so far has been handed over. */
  flush(): Promise<void> {
    if (this.pending !== '') {
      const batch = this.pending;
      this.pending = '';
      // Sent at once: the IPC channel keeps the order of messages.
      const sent = this.opts.send(batch).catch(() => undefined);
      this.sending = this.sending.then(() => sent);
    }
    return this.sending;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private append(line: string): void {
    this.pending += line;
    if (this.pending.length >= (this.opts.maxBytes ?? 16_384)) void this.flush();
  }
}

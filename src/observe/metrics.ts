// Prometheus metrics. The registry is passed in (tests use a fresh one). Label values come
// only from bounded sets keygate controls: account names from the store, credential ids,
// fixed reason/outcome words. Never a path, header or anything else a caller chooses.
// With workers, the supervisor sums every worker's series (prom-client's AggregatorRegistry);
// `aggregator` says how a gauge combines instead: timestamps and up/ready flags take the
// minimum (the earliest expiry, and 0 if any worker is down), which a sum would make nonsense.
import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import type { Protocol } from '../vocabulary/exchange.js';
import { DeferredCounter, FastHistogram } from './request-series.js';

/** `client_closed`: the client went away before the answer was complete. */
export type Outcome = 'allowed' | 'public' | 'client_closed' | 'bad_request' | 'unauthenticated' | 'forbidden' | 'rate_limited' | 'misdirected' | 'no_route' | 'unavailable' | 'internal_error' | 'upstream_error';

export class KeygateMetrics {
  readonly requests: Counter<'account' | 'auth' | 'outcome' | 'protocol'>;
  readonly duration: FastHistogram;
  readonly authFailures: Counter<'reason'>;
  readonly rateLimited: Counter<'account'>;
  readonly upstreamErrors: Counter<'reason'>;
  readonly credentialExpiry: Gauge<'account' | 'credential'>;
  readonly configReloads: Counter<'result'>;
  readonly storeReloads: Counter<'result'>;
  readonly tlsReloads: Counter<'result'>;
  readonly certificateExpiry: Gauge<'kind' | 'subject'>;
  readonly shadowDenials: Counter<'account'>;
  readonly storeErrors: Counter<'op'>;
  readonly storeUp: Gauge;
  readonly internalErrors: Counter<'where'>;
  readonly inflight: Gauge;
  /** Where keygate_inflight_requests reads its value (the pipeline sets it). */
  inflightSource: () => number = () => 0;
  readonly openTunnels: Gauge;
  /** Where keygate_open_tunnels reads its value (the tunnel registry). */
  tunnelsSource: () => number = () => 0;
  /** Called before keygate_credential_expiry_timestamp_seconds is read (observe/inventory-metrics.ts). */
  expirySource: () => void = () => undefined;
  readonly ready: Gauge;
  private readonly requestSeries: DeferredCounter<'account' | 'auth' | 'outcome' | 'protocol'>;

  constructor(readonly registry: Registry, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [registry];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'keygate_' });
    this.requestSeries = new DeferredCounter({ name: 'keygate_requests_total', help: 'Requests answered, by account, auth method, outcome and protocol (http/1.1, h2, grpc, websocket).', labelNames: ['account', 'auth', 'outcome', 'protocol'], registers });
    this.requests = this.requestSeries.counter;
    this.duration = new FastHistogram(
      'keygate_request_duration_seconds',
      'Time from request head to response end (for a WebSocket, to the end of the tunnel).',
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    );
    this.authFailures = new Counter({ name: 'keygate_auth_failures_total', help: 'Failed authentications, by reason.', labelNames: ['reason'], registers });
    this.rateLimited = new Counter({ name: 'keygate_rate_limited_total', help: 'Requests refused by a rate limit, by account ("" for per-IP limits on failed authentication).', labelNames: ['account'], registers });
    this.upstreamErrors = new Counter({ name: 'keygate_upstream_errors_total', help: 'Upstream failures, by reason.', labelNames: ['reason'], registers });
    // Brought up to date at scrape time: a credential enters its warning window as time passes.
    const expiryNow = () => this.expirySource();
    this.credentialExpiry = new Gauge({
      name: 'keygate_credential_expiry_timestamp_seconds',
      help: 'When credentials stop working, Unix seconds: each credential within credentials.warnBefore of its end; per account its end date (credential="account") and the soonest end of anything in it (credential="soonest").',
      labelNames: ['account', 'credential'],
      registers,
      aggregator: 'min',
      collect() {
        expiryNow();
      },
    });
    this.configReloads = new Counter({ name: 'keygate_config_reloads_total', help: 'Reloads of keygate.yaml and of the credential file, by result (success, rejected).', labelNames: ['result'], registers });
    this.storeReloads = new Counter({ name: 'keygate_store_reloads_total', help: 'Credential file reloads alone, by result (success, rejected); also counted in keygate_config_reloads_total.', labelNames: ['result'], registers });
    this.tlsReloads = new Counter({ name: 'keygate_tls_reloads_total', help: 'Certificate, key, CA and CRL reloads, by result (success, rejected).', labelNames: ['result'], registers });
    this.certificateExpiry = new Gauge({ name: 'keygate_certificate_expiry_timestamp_seconds', help: 'notAfter of the server certificate (kind=server) and of each trusted client CA (client_ca), and nextUpdate of each CRL (crl), Unix seconds.', labelNames: ['kind', 'subject'], registers, aggregator: 'min' });
    this.shadowDenials = new Counter({ name: 'keygate_shadow_denials_total', help: 'Requests that scope rules would deny, admitted because authorization.mode is shadow.', labelNames: ['account'], registers });
    this.storeErrors = new Counter({ name: 'keygate_store_errors_total', help: 'Failed calls to the shared credential store, by what they were doing (read, update, sync, usage, limit).', labelNames: ['op'], registers });
    for (const op of ['read', 'update', 'sync', 'usage', 'limit']) this.storeErrors.inc({ op }, 0);
    this.storeUp = new Gauge({ name: 'keygate_store_up', help: '1 while the credential store answers (always 1 for the file store), 0 while a shared store is unreachable.', registers, aggregator: 'min' });
    this.internalErrors = new Counter({ name: 'keygate_internal_errors_total', help: 'Failures inside keygate that no rule foresaw (a bug), by where they happened: request, admin, reload, audit, store. Each is also logged with its stack.', labelNames: ['where'], registers });
    for (const where of ['request', 'admin', 'reload', 'audit', 'store']) this.internalErrors.inc({ where }, 0);
    // Read at scrape time from the pipeline's own counter: no gauge update per request.
    const inflightNow = () => this.inflightSource();
    this.inflight = new Gauge({
      name: 'keygate_inflight_requests',
      help: 'Requests being handled now.',
      registers,
      collect() {
        this.set(inflightNow());
      },
    });
    const tunnelsNow = () => this.tunnelsSource();
    this.openTunnels = new Gauge({
      name: 'keygate_open_tunnels',
      help: 'WebSocket tunnels open now (upstream switched protocols, not yet closed).',
      registers,
      collect() {
        this.set(tunnelsNow());
      },
    });
    this.ready = new Gauge({ name: 'keygate_ready', help: '1 while this instance accepts traffic, 0 while starting or draining.', registers, aggregator: 'min' });
    for (const result of ['success', 'rejected']) {
      this.configReloads.inc({ result }, 0);
      this.storeReloads.inc({ result }, 0);
      this.tlsReloads.inc({ result }, 0);
    }
  }

  /** One request finished: two plain-number updates, folded into prom-client at scrape time (request-series.ts). */
  observeRequest(account: string, auth: string, outcome: Outcome, seconds: number, protocol: Protocol = 'http/1.1'): void {
    const hk = outcome + '\u0000' + protocol;
    const key = account + '\u0000' + auth + '\u0000' + hk;
    if (!this.requestSeries.inc(key)) this.requestSeries.add(key, { account, auth, outcome, protocol });
    if (!this.duration.observe(hk, seconds)) this.duration.add(hk, { outcome, protocol }, seconds);
  }

  /** Drop children of accounts that no longer exist, so deleted accounts do not linger. */
  forgetAccounts(keep: ReadonlySet<string>): void {
    this.requestSeries.prune((key) => {
      const account = key.slice(0, key.indexOf('\u0000'));
      return account === '' || keep.has(account);
    });
  }
}

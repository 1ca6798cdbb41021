// The admin listener (loopback by default): /metrics, /healthz, /readyz, and the admin API
// under /admin/ when one is mounted. Never served on the public listener. With admin.tls set
// it speaks HTTPS and asks every client for a certificate, verified against the proxy's client
// CAs (listen.clientAuth.ca, CRLs honoured); whether one is required is the admin API's call
// (a token is enough), so TLS itself never refuses a client (rejectUnauthorized: false). Its
// certificate, key and client trust come from a certificate source: a renewed certificate or a
// new CRL applies to the next handshake, and a bad file keeps the previous material.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import type { Registry } from 'prom-client';
import type { KeygateConfig } from '../config/schema.js';
import type { CertificateSource } from '../listener/certificate-source.js';

export type AdminApiHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface AdminDeps {
  registry: Registry;
  /** The /metrics text when not the registry's own (with workers: every worker's, summed). */
  metrics?: () => Promise<string>;
  isReady: () => boolean;
  /**
   * Whether the shared store answers (undefined: no shared store, or not known yet). Readiness
   * does not depend on it — every replica shares the one Redis, so taking them all out of the
   * balancer would help no one (docs/fleet.md) — but /readyz says it, beside the metric.
   */
  storeUp?: () => boolean | undefined;
  api?: AdminApiHandler;
  /** The admin listener's TLS options (identity + client trust), when admin.tls is set. */
  tls?: CertificateSource<{ readonly options: SecureContextOptions }>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(text);
}

export function createAdminServer(config: KeygateConfig['admin'], deps: AdminDeps): http.Server {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0];
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      (deps.metrics ?? (() => deps.registry.metrics()))().then(
        (text) => {
          res.writeHead(200, { 'content-type': deps.registry.contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        () => json(res, 500, { status: 'error' }),
      );
      return;
    }
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const up = deps.storeUp?.();
      const store = up === undefined ? {} : { store: up ? 'reachable' : 'unreachable' };
      return deps.isReady() ? json(res, 200, { status: 'ready', ...store }) : json(res, 503, { status: 'not ready', ...store });
    }
    if (path?.startsWith('/admin/') && deps.api) return deps.api(req, res);
    json(res, 404, { status: 404, title: 'Not found' });
  };
  let server: http.Server;
  if (config.tls && deps.tls) {
    const source = deps.tls;
    const secure = https.createServer({ ...source.current().options, requestCert: true, rejectUnauthorized: false }, handler);
    source.onChange((m) => secure.setSecureContext(m.options));
    server = secure;
  } else {
    server = http.createServer(handler);
  }
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  return server;
}

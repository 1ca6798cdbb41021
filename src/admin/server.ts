// The admin listener (loopback by default): /metrics, /healthz, /readyz, and the admin API
// under /admin/v1 when one is mounted. Never served on the public listener.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { KeygateConfig } from '../config/schema.js';

export type AdminApiHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface AdminDeps {
  registry: Registry;
  isReady: () => boolean;
  api?: AdminApiHandler;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function createAdminServer(config: KeygateConfig['admin'], deps: AdminDeps): http.Server {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0];
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      deps.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': deps.registry.contentType, 'cache-control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        () => json(res, 500, { status: 'error' }),
      );
      return;
    }
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') return deps.isReady() ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'not ready' });
    if (path?.startsWith('/admin/') && deps.api) return deps.api(req, res);
    json(res, 404, { status: 404, title: 'Not found' });
  };
  const server = config.tls
    ? https.createServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key), requestCert: true, rejectUnauthorized: false }, handler)
    : http.createServer(handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  return server;
}

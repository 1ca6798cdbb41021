// ⑤ The tunnel terminal: what a WebSocket upgrade meets once every stage admitted it (the
// chain is a GET's: identify, limit, authorize). keygate makes the upgrade request to the
// route's upstream itself, over HTTP/1.1 (RFC 6455; whatever the route's protocol), with the
// forwarded headers every request gets — the client's, stripped of everything forgeable, plus
// the identity headers — and `Connection: Upgrade`, `Upgrade: websocket`. The client's
// Sec-WebSocket-* headers pass untouched, so the upstream's 101 (accept key, subprotocol,
// extensions) is relayed as it is and the handshake holds end to end. An upstream that does
// not switch gets its answer relayed; one that does gets a Tunnel (tunnel.ts).
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { kgError } from '../errors/keygate-error.js';
import type { UsageTracker } from '../store/usage-tracker.js';
import { appendOwnHeaders } from '../transport/own-headers.js';
import type { Routed, TunnelStats } from '../vocabulary/context.js';
import type { Terminal, TerminalResult } from '../vocabulary/stage.js';
import { buildUpstreamHeaders, classifyUpstreamError } from './forward-terminal.js';
import { appendResponseHeaders } from './response-headers.js';
import { Tunnel, type Tunnels } from './tunnel.js';

export interface TunnelOptions {
  /** The route's upstream origin (http:// or https://). */
  origin: string;
  /** Time for the upstream's answer to the upgrade request. */
  timeoutMs: number;
  /** listen.websocket.idleTimeout. */
  idleMs: number;
  identity: boolean;
  usage?: UsageTracker;
  tunnels: Tunnels;
}

/** In the upstream's 101: headers keygate sets itself. */
const OWN = new Set(['x-request-id', 'keygate-credential-expires', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']);

export function tunnelTerminal(opts: TunnelOptions): Terminal<Routed> {
  const { timeoutMs, idleMs, identity, usage, tunnels } = opts;
  const u = new URL(opts.origin);
  const secure = u.protocol === 'https:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = Number(u.port) || (secure ? 443 : 80);
  const tlsOptions = secure ? { servername: isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'] } : {};
  return {
    kind: 'tunnel',
    run: (ctx, done) => {
      const x = ctx.x;
      const io = x.upgrade;
      if (!io || x.aborted) {
        done({ ok: false, reason: 'client_closed' });
        return;
      }
      if (identity && ctx.principal && usage) usage.touch(ctx.principal.id, ctx.nowMs);
      const headers = buildUpstreamHeaders(ctx, identity);
      headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
      const req = (secure ? https : http).request({ host, port, method: 'GET', path: ctx.path + ctx.query, headers, agent: false, timeout: timeoutMs, ...tlsOptions });
      let finished = false;
      const finish = (r: TerminalResult) => {
        if (finished) return;
        finished = true;
        done(r);
      };
      let timedOut = false;
      req.on('timeout', () => {
        timedOut = true;
        req.destroy();
      });
      req.on('error', (err) => {
        if (finished) return;
        if (x.aborted) finish({ ok: false, reason: 'client_closed' });
        else finish({ ok: false, ...(timedOut ? { error: kgError('KG_ERR_UPSTREAM_TIMEOUT'), reason: 'timeout' } : classifyUpstreamError(err)) });
      });
      x.onClose(() => {
        if (finished) return;
        req.destroy();
        finish({ ok: false, reason: 'client_closed' });
      });

      // The upstream refused the upgrade (or is no WebSocket server): the client gets its answer.
      req.on('response', (res: IncomingMessage) => {
        if (finished) return;
        finished = true;
        x.writeHead(res.statusCode ?? 502, appendOwnHeaders(appendResponseHeaders([], res.headers, ctx.limit !== undefined && ctx.limit !== null), ctx));
        res.on('data', (chunk: Buffer) => {
          if (!x.write(chunk)) {
            res.pause();
            x.onDrain(() => res.resume());
          }
        });
        res.once('end', () => x.end());
        res.once('error', () => x.destroy());
        done({ ok: true });
      });

      req.on('upgrade', (res: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
        if (finished || x.aborted) {
          upSocket.destroy();
          finish({ ok: false, reason: 'client_closed' });
          return;
        }
        finished = true;
        const out: string[] = [];
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) if (!OWN.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
        const stats: TunnelStats = { bytesFromClient: 0, bytesFromUpstream: 0, closedBy: undefined };
        ctx.tunnel = stats;
        x.writeHead(101, appendOwnHeaders(out, ctx));
        const tunnel = new Tunnel(io.socket, upSocket, stats, (clean) => (clean ? x.end() : x.destroy()));
        tunnels.add(tunnel);
        tunnel.start(io.head, upHead, idleMs);
        done({ ok: true });
      });
      req.end();
    },
  };
}

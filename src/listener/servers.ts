// ① The HTTPS listener(s). One listener serves both modes: the SNI name picks the secure
// context (the client-certificate one carries the client CAs and CRLs) and the request
// handler picks the mode. Client certificates are requested on every handshake but never
// enforced by TLS itself (rejectUnauthorized: false): a missing or untrusted certificate on a
// client-certificate host gets a 401 problem+json, which can be audited and counted; on an
// API-key host a certificate is ignored. An optional second port is client-certificate only.
// Each request reaches the request path as an Exchange (transport/), nothing Node-specific:
// an HTTP/1.1 request, an HTTP/2 stream (ALPN h2, handed to http2-front.ts), or a WebSocket
// upgrade.
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { KeygateConfig } from '../config/schema.js';
import { Http1Exchange } from '../transport/http1.js';
import { isWebSocketUpgrade, UpgradeExchange } from '../transport/upgrade.js';
import type { ExchangeHandler } from '../vocabulary/exchange.js';
import { modeOfName } from '../vocabulary/host-mode.js';
import { createHttp2Front, type Http2Front } from './http2-front.js';
import type { ConnectHandler, ParserRefusalHandler } from './parser-refusals.js';
import type { StreamRefuser } from './stream-refusals.js';
import type { TlsMaterial } from './tls-material.js';

export interface MaterialHolder {
  material: TlsMaterial;
  prefix: string;
}

export interface Listeners {
  main: https.Server;
  clientAuth?: https.Server;
  /** Apply new TLS material to new handshakes; open connections keep theirs. */
  applyMaterial(m: TlsMaterial): void;
  all(): https.Server[];
  /** HTTP/2 sessions: GOAWAY on drain (streams in flight finish), destroyed on close. */
  goAway(): void;
  destroySessions(): void;
}

function serverOptions(config: KeygateConfig): https.ServerOptions {
  const l = config.listen.limits;
  return {
    requestCert: true,
    rejectUnauthorized: false,
    // The head is due within headersTimeout of the connection; a client that has not even
    // finished TLS by then cannot meet it. Node starts headersTimeout only after the handshake,
    // so the handshake gets the shorter of the two.
    handshakeTimeout: Math.min(l.handshakeTimeout, l.headersTimeout),
    maxHeaderSize: l.maxHeaderSize,
    headersTimeout: l.headersTimeout,
    requestTimeout: l.requestTimeout,
    // Enforce the two timeouts above at 1 s granularity instead of Node's 30 s default.
    connectionsCheckingInterval: 1_000,
    // h2 first: a client offering both gets HTTP/2 (RFC 7301 lets the server choose).
    ALPNProtocols: config.listen.http2.enabled ? ['h2', 'http/1.1'] : ['http/1.1'],
    // A request without Host gets keygate's own 400 problem+json from the head stage (audited,
    // counted), not Node's bare one.
    requireHostHeader: false,
  };
}

function applyLimits(server: https.Server, config: KeygateConfig): void {
  const l = config.listen.limits;
  server.keepAliveTimeout = l.keepAliveTimeout;
  server.maxRequestsPerSocket = l.maxRequestsPerSocket;
  if (l.maxConnections > 0) server.maxConnections = l.maxConnections;
}

/**
 * Requests go to `handler`; so do requests with `Expect: 100-continue`, without Node's
 * automatic `100 Continue`: the forwarder sends it once every stage admitted the request.
 */
function wire(server: https.Server, config: KeygateConfig, handler: ExchangeHandler, onTlsError: (err: Error, socket: Socket) => void, refusals: Refusals, forcedMode?: 'clientauth'): void {
  server.on('request', (req, res) => handler(new Http1Exchange(req, res), forcedMode));
  server.on('checkContinue', (req, res) => handler(new Http1Exchange(req, res, true), forcedMode));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // With an 'upgrade' listener Node hands over every request carrying Upgrade. Only the
    // WebSocket handshake is tunnelled; any other upgrade (h2c, which RFC 9113 forbids over
    // TLS anyway) is refused like a request the parser could not take.
    if (isWebSocketUpgrade(req)) handler(new UpgradeExchange(req, socket, head), forcedMode);
    else refusals.onClientError(Object.assign(new Error('unsupported upgrade'), { code: 'HPE_UNSUPPORTED_UPGRADE' }), socket);
  });
  // Any other Expect value: the pipeline's head stage answers 417 problem+json, audited.
  server.on('checkExpectation', (req, res) => handler(new Http1Exchange(req, res), forcedMode));
  applyLimits(server, config);
  server.on('tlsClientError', onTlsError);
  server.on('clientError', refusals.onClientError);
  server.on('connect', refusals.onConnect);
}

export interface Refusals {
  onClientError: ParserRefusalHandler;
  onConnect: ConnectHandler;
}

/**
 * HTTP/2 by ALPN on the same port: the https.Server's own connection listener keeps every
 * HTTP/1.1 connection (its limits and parser untouched); a connection that chose h2 goes to the
 * HTTP/2 front instead, after the same TLS handshake (SNI, client certificate).
 */
function offerHttp2(server: https.Server, front: Http2Front): void {
  const [h1] = server.listeners('secureConnection') as Array<(socket: TLSSocket) => void>;
  if (!h1) throw new Error('https.Server without its connection listener');
  server.removeAllListeners('secureConnection');
  server.on('secureConnection', (socket: TLSSocket) => (socket.alpnProtocol === 'h2' ? front.accept(socket) : h1.call(server, socket)));
}

export function createListeners(
  config: KeygateConfig,
  holder: MaterialHolder,
  handler: ExchangeHandler,
  onTlsError: (err: Error, socket: Socket) => void,
  refusals: Refusals,
  onStreamRefusal: StreamRefuser,
): Listeners {
  const fronts: Http2Front[] = [];
  const withHttp2 = (server: https.Server, forcedMode?: 'clientauth') => {
    if (!config.listen.http2.enabled) return;
    const front = createHttp2Front(config, handler, onStreamRefusal, forcedMode);
    fronts.push(front);
    offerHttp2(server, front);
  };
  const main = https.createServer({
    ...serverOptions(config),
    ...holder.material.apiOptions,
    SNICallback: (servername, cb) => cb(null, modeOfName(servername, holder.prefix) === 'clientauth' ? holder.material.clientAuth : holder.material.api),
  });
  wire(main, config, handler, onTlsError, refusals);
  withHttp2(main);
  let clientAuth: https.Server | undefined;
  if (config.listen.clientAuth.port !== null) {
    clientAuth = https.createServer({ ...serverOptions(config), ...holder.material.clientAuthOptions });
    wire(clientAuth, config, handler, onTlsError, refusals, 'clientauth');
    withHttp2(clientAuth, 'clientauth');
  }
  return {
    main,
    clientAuth,
    applyMaterial(m) {
      holder.material = m;
      // Connections without SNI use the default context.
      main.setSecureContext(m.apiOptions);
      clientAuth?.setSecureContext(m.clientAuthOptions);
    },
    all: () => (clientAuth ? [main, clientAuth] : [main]),
    goAway: () => {
      for (const f of fronts) f.goAway();
    },
    destroySessions: () => {
      for (const f of fronts) f.destroyAll();
    },
  };
}

// ① The HTTPS listener(s). One listener serves both modes: the SNI name picks the secure
// context (the client-certificate one carries the client CAs and CRLs) and the request
// handler picks the mode. Client certificates are requested on every handshake but never
// enforced by TLS itself (rejectUnauthorized: false): a missing or untrusted certificate on a
// client-certificate host gets a 401 problem+json, which can be audited and counted; on an
// API-key host a certificate is ignored. An optional second port is client-certificate only.
// Each request reaches the request path as an Exchange (transport/), nothing Node-specific.
import https from 'node:https';
import type { Socket } from 'node:net';
import type { KeygateConfig } from '../config/schema.js';
import { Http1Exchange } from '../transport/http1.js';
import type { ExchangeHandler } from '../vocabulary/exchange.js';
import { modeOfName } from '../vocabulary/host-mode.js';
import type { ConnectHandler, ParserRefusalHandler } from './parser-refusals.js';
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
    ALPNProtocols: ['http/1.1'],
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

export function createListeners(
  config: KeygateConfig,
  holder: MaterialHolder,
  handler: ExchangeHandler,
  onTlsError: (err: Error, socket: Socket) => void,
  refusals: Refusals,
): Listeners {
  const main = https.createServer({
    ...serverOptions(config),
    ...holder.material.apiOptions,
    SNICallback: (servername, cb) => cb(null, modeOfName(servername, holder.prefix) === 'clientauth' ? holder.material.clientAuth : holder.material.api),
  });
  wire(main, config, handler, onTlsError, refusals);
  let clientAuth: https.Server | undefined;
  if (config.listen.clientAuth.port !== null) {
    clientAuth = https.createServer({ ...serverOptions(config), ...holder.material.clientAuthOptions });
    wire(clientAuth, config, handler, onTlsError, refusals, 'clientauth');
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
  };
}

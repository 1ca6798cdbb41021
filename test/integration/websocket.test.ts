// WebSocket through keygate (SPEC §4.7), with the `ws` client and server and the built binary.
// An upgrade is authenticated, limited and authorized like a GET of its path; a refused one gets
// its problem+json answer and never reaches the upstream. An admitted one reaches the upstream
// with the identity headers (forged ones stripped), and then bytes flow both ways until a side
// closes — audited with the duration and the bytes each way, counted in keygate_open_tunnels.
// SIGTERM ends the tunnels after the drain timeout with a Close 1001 to both sides.
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createTestEnv, eventually, readJsonLines, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { adminGet, rawJson, rawRequest, sample, SETUP_TIMEOUT_MS, signal, within } from './support.js';

let env: TestEnv;
let wss: WebSocketServer;
let wsPort: number;
let proxy: ChildProxy;
let secret: string;
let limitedSecret: string;
let viewerSecret: string;
/** Every upgrade request that reached the upstream, and each connection's close code there. */
const upgrades: IncomingMessage[] = [];
const upstreamCloses: number[] = [];

beforeAll(async () => {
  env = await createTestEnv();
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (offered) => (offered.has('chat.v1') ? 'chat.v1' : false) });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wsPort = (wss.address() as AddressInfo).port;
  wss.on('connection', (ws, req) => {
    upgrades.push(req);
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      if (!isBinary && text === 'headers') ws.send(JSON.stringify(req.headers));
      else ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code) => upstreamCloses.push(code));
  });
  const up = `http://127.0.0.1:${wsPort}`;
  env.writeConfig({
    routes: [
      { pathPrefix: '/healthz', upstream: env.upstream.url, public: true },
      { pathPrefix: '/ws', upstream: up, timeout: '5s' },
      { pathPrefix: '/', upstream: env.upstream.url },
    ],
    scopes: { 'ws:chat': ['GET /ws/chat'], 'items:read': ['GET /api/items/**'] },
    roles: { chatter: ['ws:chat'], viewer: ['items:read'] },
    policies: { default: { rate: '1000/s', burst: 1000 }, tiny: { rate: '1/h', burst: 1 } },
    listen: { websocket: { idleTimeout: '2s' } },
    shutdown: { drainTimeout: '1s' },
  });
  secret = (await env.token('chat-client', { roles: ['chatter'] })).secret;
  limitedSecret = (await env.token('chat-client', { policy: 'tiny' })).secret;
  viewerSecret = (await env.token('viewer-client', { roles: ['viewer'] })).secret;
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await env.cleanup();
  await new Promise<void>((r) => {
    for (const c of wss.clients) c.terminate();
    wss.close(() => r());
  });
});

function connect(path: string, headers: Record<string, string>, protocols?: string[]): WebSocket {
  // ws passes TLS options on to tls.connect; its types do not list servername.
  const tlsOptions = { ca: env.serverCa.certPem, servername: 'api.test' } as Record<string, unknown>;
  return new WebSocket(`wss://127.0.0.1:${proxy.port}${path}`, protocols, { ...tlsOptions, headers: { host: 'api.test', ...headers } });
}

function opened(ws: WebSocket): Promise<void> {
  return within(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    }),
    5_000,
    'websocket open',
  );
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return within(new Promise((resolve) => ws.once('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }))), 5_000, 'message');
}

function closed(ws: WebSocket, ms = 5_000): Promise<{ code: number; reason: string }> {
  return within(new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))), ms, 'websocket close');
}

/** The refused upgrade's answer: status, headers and the problem+json body. */
function refusal(ws: WebSocket): Promise<{ status: number; contentType: string | undefined; body: Record<string, unknown> }> {
  return within(
    new Promise((resolve, reject) => {
      ws.once('open', () => reject(new Error('the upgrade was admitted')));
      ws.once('error', () => undefined);
      ws.once('unexpected-response', (_req, res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, contentType: res.headers['content-type'], body: JSON.parse(text) as Record<string, unknown> }));
      });
    }),
    5_000,
    'refused upgrade',
  );
}

describe('an admitted upgrade', () => {
  it('echoes both ways, carries the identity headers at the upgrade, strips forged ones, keeps the subprotocol', async () => {
    const ws = connect('/ws/chat', { 'x-api-key': secret, 'x-keygate-account': 'forged', 'x-keygate-scopes': 'keygate:admin', 'x-forwarded-client-cert': 'Hash=forged' }, ['chat.v2', 'chat.v1']);
    await opened(ws);
    expect(ws.protocol).toBe('chat.v1');
    ws.send('hello');
    expect((await nextMessage(ws)).data.toString()).toBe('hello');
    const blob = Buffer.alloc(200_000, 7);
    ws.send(blob);
    const back = await nextMessage(ws);
    expect(back.isBinary).toBe(true);
    expect(Buffer.compare(back.data, blob)).toBe(0);
    const req = upgrades.at(-1)!;
    expect(req.headers['x-keygate-account']).toBe('chat-client');
    expect(req.headers['x-keygate-scopes']).toBe('ws:chat');
    expect(req.headers['x-keygate-auth']).toBe('api-key');
    expect(req.headers['x-forwarded-client-cert']).toBeUndefined();
    expect(req.headers['x-api-key']).toBeUndefined();
    expect(req.headers['x-request-id']).toBeTruthy();
    // The tunnel is counted while it is open.
    expect(sample((await adminGet(proxy.adminPort, '/metrics')).body, 'keygate_open_tunnels')).toBe(1);
    ws.close(1000, 'done');
    expect((await closed(ws)).code).toBe(1000);
    await eventually(async () => sample((await adminGet(proxy.adminPort, '/metrics')).body, 'keygate_open_tunnels') === 0, 5_000);
  });

  it('is audited on close with its duration, bytes each way and who closed it', async () => {
    const ws = connect('/ws/chat', { 'x-api-key': secret });
    await opened(ws);
    ws.send(Buffer.alloc(1_000, 1));
    await nextMessage(ws);
    ws.close(1000);
    await closed(ws);
    await eventually(() => readJsonLines(env.auditFile).some((l) => l.protocol === 'websocket' && l.status === 101 && l.bytesFromClient !== undefined), 5_000);
    const line = readJsonLines(env.auditFile).filter((l) => l.protocol === 'websocket' && l.status === 101).at(-1)!;
    expect(line).toMatchObject({ account: 'chat-client', method: 'GET', path: '/ws/chat', decision: 'allow', closedBy: 'client' });
    // 1000 bytes of payload plus frame headers each way, and the close frames.
    expect(line.bytesFromClient).toBeGreaterThanOrEqual(1_000);
    expect(line.bytesFromClient).toBeLessThan(1_100);
    expect(line.bytesFromUpstream).toBeGreaterThanOrEqual(1_000);
    expect(line.bytesFromUpstream).toBeLessThan(1_100);
    expect(line.durationMs).toBeGreaterThan(0);
  });

  it('is closed with 1001 to both sides after listen.websocket.idleTimeout without a byte', async () => {
    const before = upstreamCloses.length;
    const ws = connect('/ws/chat', { 'x-api-key': secret });
    await opened(ws);
    const c = await closed(ws, 10_000);
    expect(c.code).toBe(1001);
    await eventually(() => upstreamCloses.length > before, 5_000);
    expect(upstreamCloses.at(-1)).toBe(1001);
  });

  it('twin: a tunnel with traffic outlives the idle timeout', async () => {
    const ws = connect('/ws/chat', { 'x-api-key': secret });
    await opened(ws);
    for (let i = 0; i < 6; i++) {
      ws.send(`tick ${i}`);
      expect((await nextMessage(ws)).data.toString()).toBe(`tick ${i}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close(1000);
    await closed(ws);
  });
});

describe('a refused upgrade gets its problem+json answer and never reaches the upstream', () => {
  it.each([
    ['401 without a token', {}, 401, 'KG_ERR_CREDENTIAL_MISSING'],
    ['401 with an unknown token', { 'x-api-key': 'kg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, 401, undefined],
  ] as const)('%s', async (_what, headers, status, code) => {
    const before = upgrades.length;
    const r = await refusal(connect('/ws/chat', headers));
    expect(r.status).toBe(status);
    expect(r.contentType).toBe('application/problem+json');
    if (code) expect(r.body.code).toBe(code);
    expect(upgrades.length).toBe(before);
  });

  it('403 for a path no scope of the token allows', async () => {
    const before = upgrades.length;
    const r = await refusal(connect('/ws/chat', { 'x-api-key': viewerSecret }));
    expect(r).toMatchObject({ status: 403, contentType: 'application/problem+json', body: { code: 'KG_ERR_SCOPE_DENIED' } });
    expect(upgrades.length).toBe(before);
  });

  it('429 past the rate limit (twin: the first is admitted)', async () => {
    const first = connect('/ws/chat', { 'x-api-key': limitedSecret });
    await opened(first);
    first.close(1000);
    await closed(first);
    const before = upgrades.length;
    const r = await refusal(connect('/ws/chat', { 'x-api-key': limitedSecret }));
    expect(r).toMatchObject({ status: 429, contentType: 'application/problem+json', body: { code: 'KG_ERR_RATE_LIMITED' } });
    expect(upgrades.length).toBe(before);
  });

  it('an upstream that does not switch has its own answer relayed, identity attached', async () => {
    const before = env.upstream.received.length;
    const r = await refusal(connect('/api/items/feed', { 'x-api-key': viewerSecret }));
    // The echo upstream is a plain HTTP server: it answers the upgrade request as a GET.
    expect(r.status).toBe(200);
    expect(env.upstream.received.length).toBe(before + 1);
    const seen = env.upstream.received.at(-1)!;
    expect(seen.headers['x-keygate-account']).toBe('viewer-client');
    expect(seen.headers['upgrade']).toBe('websocket');
    expect(seen.headers['sec-websocket-key']).toBeTruthy();
  });

  it('an Upgrade to anything but WebSocket: 400, not forwarded', async () => {
    const before = env.upstream.received.length;
    const r = await rawRequest({ port: proxy.port, ca: env.serverCa.certPem, data: `GET /api/items/1 HTTP/1.1\r\nHost: api.test\r\nx-api-key: ${viewerSecret}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n` });
    expect(r.status).toBe(400);
    expect(rawJson(r).code).toBe('KG_ERR_MALFORMED_REQUEST');
    expect(env.upstream.received.length).toBe(before);
  });

  it('the refusals are audited as websocket', async () => {
    await eventually(() => readJsonLines(env.auditFile).some((l) => l.protocol === 'websocket' && l.status === 403 && l.reason === 'KG_ERR_SCOPE_DENIED'), 5_000);
  });
});

describe('drain', () => {
  it('SIGTERM: after the drain timeout, Close 1001 to both sides, the tunnel audited, exit 0', async () => {
    const ws = connect('/ws/chat', { 'x-api-key': secret });
    await opened(ws);
    // Keep traffic flowing so the idle timeout is not what closes it.
    const keep = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('still here'), 200);
    const before = upstreamCloses.length;
    const closing = closed(ws, 10_000);
    const gone = signal();
    ws.on('close', () => gone.resolve());
    const exit = proxy.stop('SIGTERM', 15_000);
    try {
      const c = await closing;
      expect(c.code).toBe(1001);
      expect(c.reason).toBe('going away');
      expect(await within(exit, 10_000, 'exit after drain')).toBe(0);
      await eventually(() => upstreamCloses.length > before, 5_000);
      expect(upstreamCloses.at(-1)).toBe(1001);
      const line = readJsonLines(env.auditFile).filter((l) => l.protocol === 'websocket' && l.status === 101).at(-1)!;
      expect(line.closedBy).toBe('drain');
      expect(line.bytesFromClient).toBeGreaterThan(0);
    } finally {
      clearInterval(keep);
    }
  });
});

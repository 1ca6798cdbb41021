// SIGTERM on the real binary: readiness turns 503, the request in flight finishes with its
// answer, a request that arrives during the drain gets 503 KG_ERR_SHUTTING_DOWN (on a
// connection that was already open) or a refused connection (a new one: the listener is
// closed first), and the process exits 0. A request that outlives shutdown.drainTimeout does
// not hold the exit back.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, readJsonLines, eventually, request, type TestEnv } from '../helpers/harness.js';
import { CLI_TEST_TIMEOUT_MS, SETUP_TIMEOUT_MS, adminGet, holdingUpstream, rawJson, seedToken, signal, within } from './support.js';

let env: TestEnv;
let secret: string;
let holding: ReturnType<typeof holdingUpstream>;

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({ shutdown: { drainTimeout: '15s' } });
  secret = (await seedToken(env, 'svc', { roles: ['viewer'] })).secret;
  holding = holdingUpstream(env);
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

/** Opens a TLS connection and sends the first part of a request head. */
function partialHead(port: number) {
  const chunks: Buffer[] = [];
  const closed = signal();
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'api.test', ca: env.serverCa.certPem });
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('close', () => closed.resolve());
  socket.on('error', () => undefined);
  const connected = new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  return {
    async start() {
      await connected;
      socket.write('GET /api/items/1 HTTP/1.1\r\nHost: api.test\r\n');
    },
    /** Sends the rest and returns the whole answer once the server closes. */
    async finish() {
      socket.write(`x-api-key: ${secret}\r\nConnection: close\r\n\r\n`);
      await within(closed.promise, 5_000, 'answer on the open connection');
      const text = Buffer.concat(chunks).toString('latin1');
      return { text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), json: () => rawJson({ text, status: undefined, closed: true }) };
    },
  };
}

describe('SIGTERM', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('drains: in-flight finishes, readiness 503, new requests refused, exit 0', async () => {
    const held = holding.expect();
    const proxy = await env.startChild();
    expect((await adminGet(proxy.adminPort, '/readyz')).status).toBe(200);
    const waiting = partialHead(proxy.port);
    await waiting.start();
    const inflight = request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/hold', headers: { 'x-api-key': secret }, timeoutMs: 20_000 });
    await within(held.arrived.promise, 5_000, 'the held request reached the upstream');

    const exited = proxy.stop('SIGTERM', 20_000);
    await eventually(async () => (await adminGet(proxy.adminPort, '/readyz')).status === 503, 2_000);
    expect((await adminGet(proxy.adminPort, '/healthz')).status).toBe(200);

    // A request completing its head on a connection opened before: 503, Retry-After.
    const late = await waiting.finish();
    expect(late.status).toBe(503);
    expect(late.text).toMatch(/\r\nretry-after: \d+\r\n/i);
    expect(late.json().code).toBe('KG_ERR_SHUTTING_DOWN');
    // A new connection: the listener is closed, so it is refused.
    await expect(request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/1', headers: { 'x-api-key': secret }, timeoutMs: 3_000 })).rejects.toThrow(/ECONNREFUSED/);
    expect(proxy.child.exitCode).toBeNull();

    held.res!.writeHead(200, { 'content-type': 'text/plain', 'content-length': '8' }).end('finished');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.body).toBe('finished');
    expect(await within(exited, 15_000, 'exit after the drain')).toBe(0);
    expect(proxy.stderr()).toMatch(/"msg":"stopped"/);

    // Both requests are in the audit file, flushed before the exit.
    const audit = readJsonLines(env.auditFile);
    expect(audit.some((a) => a.event === 'request' && a.path === '/api/items/hold' && a.status === 200)).toBe(true);
    expect(audit.some((a) => a.event === 'request' && a.status === 503 && a.reason === 'KG_ERR_SHUTTING_DOWN')).toBe(true);
  });

  it('a request that outlives drainTimeout does not hold the exit back', async () => {
    env.writeConfig({ shutdown: { drainTimeout: '1s' } });
    const held = holding.expect();
    const proxy = await env.startChild();
    const inflight = request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/hold', headers: { 'x-api-key': secret }, timeoutMs: 20_000 }).then(
      (r) => r.status,
      (err: Error) => err.message,
    );
    await within(held.arrived.promise, 5_000, 'the held request reached the upstream');
    expect(await proxy.stop('SIGTERM', 15_000)).toBe(0);
    // Cut off at the deadline: no answer (the upstream never gave one).
    expect(await within(inflight, 5_000, 'client sees the end')).not.toBe(200);
    held.res?.destroy();
  });
});

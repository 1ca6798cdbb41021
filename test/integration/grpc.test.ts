// gRPC through keygate (SPEC §4.7), with real grpc-js clients and servers and the built binary:
// a grpc-js client over TLS (ALPN h2) → keygate → a grpc-js server over h2c (and one over TLS,
// protocol h2). All four call kinds pass with the caller's identity in the metadata the server
// sees and forged identity stripped; deadlines are the smaller of the caller's and the route's,
// the rest forwarded; cancellation travels both ways; and every refusal is a gRPC answer with
// its status code, the problem's detail as the message and the KG_ERR code as metadata —
// without the call ever reaching the server.
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, MTLS_HOST, readJsonLines, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintServer } from '../helpers/pki.js';
import { clientAt, echoClient, metadata, startEchoServer, unary, type EchoClientInstance, type EchoServer, type Msg } from './grpc-support.js';
import { closedPort, SETUP_TIMEOUT_MS, within } from './support.js';

let env: TestEnv;
let echo: EchoServer;
let tlsEcho: EchoServer;
let resetting: http2.Http2Server;
let proxy: ChildProxy;
let client: EchoClientInstance;
let secret: string;
let limitedSecret: string;
let endlessCancelled = false;
/** Called when the hand-made upstream takes a /giveup.Echo call, with the grpc-timeout it got. */
let onGiveupCall: ((timeoutMs: number, answer: () => void) => void) | undefined;
// (When an upstream's DEADLINE_EXCEEDED comes after keygate's deadline — a timer race a busy
// loop loses by chance, not one a test can stage — keygate answers as its own timeout; the
// rule is isOwnDeadline, tested in test/unit/grpc-deadline.test.ts.)

beforeAll(async () => {
  env = await createTestEnv();
  echo = await startEchoServer();
  // An upstream over TLS whose certificate the test server CA signed: keygate trusts it through
  // NODE_EXTRA_CA_CERTS, as an operator would add a private CA.
  const upCert = await mintServer(env.serverCa.authority, ['localhost']);
  tlsEcho = await startEchoServer(grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(upCert.certPem), private_key: Buffer.from(upCert.keyPem) }]), ['tls']);
  // A bare HTTP/2 upstream speaking gRPC's framing by hand, for what grpc-js servers will not
  // do: reset a stream after the first message (a crashing server), or stream on and on,
  // ignoring grpc-timeout (a server that does not enforce deadlines).
  resetting = http2.createServer();
  const message = (text: string) => {
    const body = Buffer.from(JSON.stringify({ text }));
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    return frame;
  };
  resetting.on('stream', (s, h) => {
    s.on('error', () => undefined);
    if (String(h[':path']).startsWith('/giveup.Echo/')) {
      // A server that enforces the deadline it was given: DEADLINE_EXCEEDED, trailers-only.
      s.resume();
      const answer = () => {
        if (!s.destroyed) s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '4', 'grpc-message': 'upstream gave up' }, { endStream: true });
      };
      onGiveupCall?.(Number.parseInt(String(h['grpc-timeout']), 10), answer);
      return;
    }
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    if (h[':path'] === '/reset.Echo/Count') {
      s.write(message('first'));
      setTimeout(() => s.destroy(new Error('upstream crashed')), 50);
      return;
    }
    let i = 0;
    const timer = setInterval(() => s.write(message(`item ${i++}`)), 20);
    s.on('close', () => {
      clearInterval(timer);
      endlessCancelled = true;
    });
    setTimeout(() => s.destroy(), 10_000).unref(); // bound
  });
  await new Promise<void>((r) => resetting.listen(0, '127.0.0.1', r));
  const dead = await closedPort();
  const up = `http://127.0.0.1:${echo.port}`;
  env.writeConfig({
    routes: [
      { pathPrefix: '/test.Echo/Slow', upstream: up, protocol: 'h2c', timeout: '500ms' },
      { pathPrefix: '/endless.Echo', upstream: `http://127.0.0.1:${(resetting.address() as AddressInfo).port}`, protocol: 'h2c', timeout: '400ms' },
      { pathPrefix: '/test.Echo', upstream: up, protocol: 'h2c', timeout: '5s' },
      { pathPrefix: '/tls.Echo', upstream: `https://localhost:${tlsEcho.port}`, protocol: 'h2', timeout: '5s' },
      { pathPrefix: '/giveup.Echo', upstream: `http://127.0.0.1:${(resetting.address() as AddressInfo).port}`, protocol: 'h2c', timeout: '300ms' },
      { pathPrefix: '/reset.Echo', upstream: `http://127.0.0.1:${(resetting.address() as AddressInfo).port}`, protocol: 'h2c' },
      { pathPrefix: '/dead.Echo', upstream: `http://127.0.0.1:${dead}`, protocol: 'h2c' },
      { pathPrefix: '/', upstream: env.upstream.url },
    ],
    scopes: {
      'echo:call': ['POST /test.Echo/Unary', 'POST /test.Echo/Collect', 'POST /test.Echo/Count', 'POST /test.Echo/Chat', 'POST /test.Echo/Slow', 'POST /tls.Echo/*', 'POST /reset.Echo/*', 'POST /dead.Echo/*', 'POST /endless.Echo/*', 'POST /giveup.Echo/*'],
    },
    roles: { caller: ['echo:call'] },
    policies: { default: { rate: '1000/s', burst: 1000 }, tiny: { rate: '1/h', burst: 2 } },
  });
  secret = (await env.token('grpc-caller', { roles: ['caller'] })).secret;
  limitedSecret = (await env.token('grpc-caller', { policy: 'tiny' })).secret;
  const caFile = join(env.dir, 'upstream-ca.crt');
  writeFileSync(caFile, env.serverCa.certPem);
  proxy = await env.startChild({ env: { NODE_EXTRA_CA_CERTS: caFile } });
  client = echoClient(proxy.port, env.serverCa.certPem);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  client?.close();
  await env.cleanup();
  await Promise.all([echo?.close(), tlsEcho?.close(), new Promise((r) => (resetting ? resetting.close(r) : r(undefined)))]);
});

const auth = () => metadata({ 'x-api-key': secret });
const callsOf = (server: EchoServer, method: string) => server.calls.filter((c) => c.method === method).length;

/** A failing call's code, details and x-keygate-error metadata. */
async function failure(p: Promise<unknown>): Promise<{ code: number; details: string; kg: string | undefined }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details, kg: e.metadata?.get('x-keygate-error')[0] as string | undefined };
  }
  throw new Error('the call succeeded');
}

describe('the four call kinds through keygate', () => {
  it('unary: answered, identity attached, forged identity stripped, audited as grpc', async () => {
    const md = auth();
    md.set('x-keygate-account', 'someone-else');
    md.set('x-keygate-scopes', 'keygate:admin');
    const res = await unary(client, 'unary', { text: 'hi' }, md);
    expect(res.text).toBe('echo hi');
    const seen = echo.calls.at(-1)!;
    expect(seen.metadata['x-keygate-account']).toBe('grpc-caller');
    expect(seen.metadata['x-keygate-scopes']).toBe('echo:call');
    expect(seen.metadata['x-keygate-auth']).toBe('api-key');
    expect(seen.metadata['x-api-key']).toBeUndefined();
    await eventually(() => readJsonLines(env.auditFile).some((l) => l.path === '/test.Echo/Unary' && l.protocol === 'grpc' && l.status === 200 && l.account === 'grpc-caller'), 5_000);
  });

  it('client streaming', async () => {
    const res = await new Promise<Msg>((resolve, reject) => {
      const call = client.collect(auth(), (err: grpc.ServiceError | null, r?: Msg) => (err ? reject(err) : resolve(r!)));
      for (const t of ['a', 'b', 'c', 'd', 'e']) call.write({ text: t });
      call.end();
    });
    expect(res).toEqual({ text: 'a,b,c,d,e', n: 5 });
  });

  it('server streaming, with the trailing metadata of the server', async () => {
    const call = client.count({ text: 'go', n: 5 }, auth());
    const items: Msg[] = [];
    call.on('data', (m: Msg) => items.push(m));
    const status = await within(new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve)), 5_000, 'server stream status');
    expect(status.code).toBe(grpc.status.OK);
    expect(items.map((m) => m.text)).toEqual(['item 0', 'item 1', 'item 2', 'item 3', 'item 4']);
    expect(status.metadata.get('x-count-done')).toEqual(['5']);
  });

  it('bidi streaming, message by message', async () => {
    const call = client.chat(auth());
    const replies: string[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', () => resolve());
      call.on('error', reject);
    });
    // Ping-pong: each message waits for the previous reply, so the relay is truly both ways.
    for (const t of ['one', 'two', 'three']) {
      const got = new Promise<void>((resolve) => call.once('data', (m: Msg) => (replies.push(m.text), resolve())));
      call.write({ text: t });
      await within(got, 5_000, `reply to ${t}`);
    }
    call.end();
    await within(ended, 5_000, 'bidi end');
    expect(replies).toEqual(['re: one', 're: two', 're: three']);
  });

  it('to an upstream over TLS (protocol h2)', async () => {
    const tlsClient = clientAt(proxy.port, env.serverCa.certPem, { unary: '/tls.Echo/Unary' });
    try {
      const res = await new Promise<Msg>((resolve, reject) => tlsClient.unary({ text: 'tls' }, auth(), (e, r) => (e ? reject(e) : resolve(r!))));
      expect(res.text).toBe('echo tls');
      expect(tlsEcho.calls.at(-1)!.metadata['x-keygate-account']).toBe('grpc-caller');
    } finally {
      tlsClient.close();
    }
  });
});

describe('deadlines', () => {
  it('the caller\'s deadline reaches the server as what remains of it', async () => {
    const res = await unary(client, 'unary', { text: 'd' }, auth(), { deadline: Date.now() + 3_000 });
    // The server saw a deadline: below the caller's 3 s, far above zero.
    expect(res.n).toBeGreaterThan(1_000);
    expect(res.n).toBeLessThanOrEqual(3_000);
  });

  it('without one, the route timeout becomes the deadline', async () => {
    const res = await unary(client, 'unary', { text: 'd' }, auth());
    expect(res.n).toBeGreaterThan(1_000);
    expect(res.n).toBeLessThanOrEqual(5_000);
  });

  it('the caller\'s deadline runs out first: DEADLINE_EXCEEDED, the server call is cancelled', async () => {
    const before = callsOf(echo, 'slow');
    const f = await failure(unary(client, 'slow', { text: 's', n: 3_000 }, auth(), { deadline: Date.now() + 300 }));
    expect(f.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(callsOf(echo, 'slow')).toBe(before + 1);
    await eventually(() => echo.calls.filter((c) => c.method === 'slow').at(-1)!.cancelled, 3_000);
  });

  it('the route timeout runs out first: DEADLINE_EXCEEDED from keygate with KG_ERR_UPSTREAM_TIMEOUT, the server call is cancelled', async () => {
    const f = await failure(unary(client, 'slow', { text: 's', n: 3_000 }, auth(), { deadline: Date.now() + 10_000 }));
    expect(f).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED, kg: 'KG_ERR_UPSTREAM_TIMEOUT', details: 'The upstream did not answer in time.' });
    await eventually(() => echo.calls.filter((c) => c.method === 'slow').at(-1)!.cancelled, 3_000);
  });

  it('the route timeout runs out in the middle of a server stream: the messages so far, then DEADLINE_EXCEEDED in the trailers', async () => {
    const short = clientAt(proxy.port, env.serverCa.certPem, { count: '/endless.Echo/Count' });
    try {
      const call = short.count({ text: 'go', n: 500 }, auth());
      const items: Msg[] = [];
      call.on('data', (m: Msg) => items.push(m));
      const error = await within(new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve)), 5_000, 'deadline mid-stream');
      expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(error.metadata.get('x-keygate-error')).toEqual(['KG_ERR_UPSTREAM_TIMEOUT']);
      // Whole messages only (each parsed), cut well before the 500 the server would send.
      expect(items.length).toBeGreaterThan(0);
      expect(items.every((m, i) => m.text === `item ${i}`)).toBe(true);
      await eventually(() => endlessCancelled, 3_000);
    } finally {
      short.close();
    }
  });

  it('an upstream DEADLINE_EXCEEDED well before the deadline is the upstream\'s own answer, passed as it is', async () => {
    const giveup = clientAt(proxy.port, env.serverCa.certPem, { unary: '/giveup.Echo/Unary' });
    onGiveupCall = (_timeoutMs, answer) => answer();
    try {
      const f = await failure(unary(giveup as never, 'unary', { text: 'x' }, auth(), { deadline: Date.now() + 10_000 }));
      expect(f).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED, kg: undefined, details: 'upstream gave up' });
    } finally {
      onGiveupCall = undefined;
      giveup.close();
    }
  });

  it('twin: a slow call within both deadlines is answered', async () => {
    const res = await unary(client, 'slow', { text: 's', n: 100 }, auth(), { deadline: Date.now() + 5_000 });
    expect(res.text).toBe('late');
  });
});

describe('cancellation', () => {
  it('the caller cancels a server stream: the server sees the call cancelled', async () => {
    const call = client.count({ text: 'go', n: 500 }, auth());
    let got = 0;
    const error = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {
      if (++got === 3) call.cancel();
    });
    expect((await within(error, 5_000, 'cancelled')).code).toBe(grpc.status.CANCELLED);
    await eventually(() => echo.calls.filter((c) => c.method === 'count').at(-1)!.cancelled, 3_000);
  });

  it('the upstream resets mid-stream: the caller\'s call fails, it does not end as if complete', async () => {
    const resetClient = clientAt(proxy.port, env.serverCa.certPem, { count: '/reset.Echo/Count' });
    try {
      const call = resetClient.count({ text: 'x' }, auth());
      const items: Msg[] = [];
      call.on('data', (m: Msg) => items.push(m));
      call.on('error', () => undefined);
      const status = await within(new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve)), 5_000, 'status after reset');
      expect(items.map((m) => m.text)).toEqual(['first']);
      expect(status.code).not.toBe(grpc.status.OK);
      expect(status.code).toBe(grpc.status.INTERNAL);
    } finally {
      resetClient.close();
    }
  });
});

describe('refusals are gRPC answers, and never reach the server', () => {
  it('16 UNAUTHENTICATED without a token', async () => {
    const before = echo.calls.length;
    const f = await failure(unary(client, 'unary', { text: 'x' }, metadata({})));
    expect(f).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'No API token was sent.', kg: 'KG_ERR_CREDENTIAL_MISSING' });
    expect(echo.calls.length).toBe(before);
  });

  it('16 UNAUTHENTICATED with an unknown token', async () => {
    const before = echo.calls.length;
    const f = await failure(unary(client, 'unary', { text: 'x' }, metadata({ 'x-api-key': secret.slice(0, -4) + (secret.endsWith('AAAA') ? 'BBBB' : 'AAAA') })));
    expect(f.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(f.kg).toMatch(/^KG_ERR_TOKEN_(UNKNOWN|MALFORMED)$/);
    expect(echo.calls.length).toBe(before);
  });

  it('7 PERMISSION_DENIED for a method no scope allows, the missing permission in the message', async () => {
    const before = callsOf(echo, 'secret');
    const f = await failure(unary(client, 'secret', { text: 'x' }, auth()));
    expect(f.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(f.kg).toBe('KG_ERR_SCOPE_DENIED');
    expect(f.details).toContain('POST /test.Echo/Secret');
    expect(callsOf(echo, 'secret')).toBe(before);
  });

  it('8 RESOURCE_EXHAUSTED past the rate limit (twin: within it, answered)', async () => {
    const md = () => metadata({ 'x-api-key': limitedSecret });
    expect((await unary(client, 'unary', { text: '1' }, md())).text).toBe('echo 1');
    expect((await unary(client, 'unary', { text: '2' }, md())).text).toBe('echo 2');
    const before = echo.calls.length;
    const f = await failure(unary(client, 'unary', { text: '3' }, md()));
    expect(f).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, kg: 'KG_ERR_RATE_LIMITED', details: 'This credential has used its request budget.' });
    expect(echo.calls.length).toBe(before);
  });

  it('14 UNAVAILABLE for a call whose :authority names a client-certificate host on an API-token connection', async () => {
    const misdirected = echoClient(proxy.port, env.serverCa.certPem, { servername: 'api.test', authority: MTLS_HOST });
    try {
      const before = echo.calls.length;
      const f = await failure(unary(misdirected, 'unary', { text: 'x' }, auth()));
      expect(f.code).toBe(grpc.status.UNAVAILABLE);
      expect(f.kg).toBe('KG_ERR_MISDIRECTED');
      expect(f.details).toBe('The Host header names a host of the other authentication mode than the TLS server name.');
      expect(echo.calls.length).toBe(before);
    } finally {
      misdirected.close();
    }
  });

  it('14 UNAVAILABLE when the upstream cannot be reached', async () => {
    const deadClient = clientAt(proxy.port, env.serverCa.certPem, { unary: '/dead.Echo/Unary' });
    try {
      const f = await failure(new Promise((resolve, reject) => deadClient.unary({ text: 'x' }, auth(), (e, r) => (e ? reject(e) : resolve(r)))));
      expect(f).toMatchObject({ code: grpc.status.UNAVAILABLE, kg: 'KG_ERR_UPSTREAM_UNAVAILABLE' });
    } finally {
      deadClient.close();
    }
  });

  it('refusals are audited as grpc with their HTTP-side status', async () => {
    await eventually(() => readJsonLines(env.auditFile).some((l) => l.protocol === 'grpc' && l.reason === 'KG_ERR_SCOPE_DENIED' && l.status === 200 && l.decision === 'deny'), 5_000);
  });
});

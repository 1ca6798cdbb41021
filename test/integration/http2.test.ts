// HTTP/2 on the HTTPS listener, against the built binary, with node:http2 and curl --http2 as
// clients: ALPN picks h2 or http/1.1 on the one port; every stream goes through the same chain
// (identity headers on, forged ones off, refusals as problem+json); the mode check is made per
// request against :authority, so one coalesced connection cannot carry a request across modes;
// and the HTTP/2 limits hold — concurrent streams, header list size and count, the
// premature-reset rule, the idle timeout — with GOAWAY on drain.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_HOST, createTestEnv, eventually, MTLS_HOST, readJsonLines, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { mintClient, type Issued } from '../helpers/pki.js';
import { ops, seed } from './mtls-support.js';
import { adminGet, sample, SETUP_TIMEOUT_MS, signal, within } from './support.js';

const run = promisify(execFile);

let env: TestEnv;
let proxy: ChildProxy;
let secret: string;
let headerFile: string;
let cert: Issued;
/** Requests the upstream is holding (path /api/items/hold…), released by the test. */
const held: ServerResponse[] = [];
let heldNow = 0;
let heldMax = 0;

beforeAll(async () => {
  env = await createTestEnv();
  env.writeConfig({
    listen: { clientAuth: { port: 0 }, http2: { maxConcurrentStreams: 4, prematureResetTotalStreams: 50, idleTimeout: '1s', streamIdleTimeout: '3s' } },
  });
  secret = (await env.token('h2-client', { roles: ['editor'] })).secret;
  cert = await mintClient(env.clientCa.authority, { commonName: 'h2-cert-client' });
  await seed(env, (data, ctx) => {
    ops.account(data, ctx, { name: 'h2-cert' });
    ops.bind(data, ctx, { account: 'h2-cert', match: 'fingerprint', value: cert.fingerprint });
  });
  // curl reads the token from a file: never on a command line other processes can see.
  headerFile = join(env.dir, 'curl-headers');
  writeFileSync(headerFile, `x-api-key: ${secret}\n`, { mode: 0o600 });
  env.upstream.handle((req, res, body) => {
    if (req.url!.startsWith('/api/items/hold')) {
      heldNow++;
      heldMax = Math.max(heldMax, heldNow);
      res.on('close', () => heldNow--);
      held.push(res);
      return;
    }
    const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: body.length });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
  });
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

function connect(opts: { servername?: string; settings?: http2.Settings; peerMaxConcurrentStreams?: number; port?: number; withCert?: boolean } = {}): Promise<ClientHttp2Session> {
  return within(
    new Promise((resolve, reject) => {
      const s = http2.connect(`https://127.0.0.1:${opts.port ?? proxy.port}`, {
        ca: env.serverCa.certPem,
        servername: opts.servername ?? API_HOST,
        settings: opts.settings,
        peerMaxConcurrentStreams: opts.peerMaxConcurrentStreams,
        ...(opts.withCert ? { cert: cert.certPem, key: cert.keyPem } : {}),
      });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }),
    5_000,
    'h2 connect',
  );
}

interface H2Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

function get(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}, body?: string): Promise<H2Answer> {
  return within(
    new Promise((resolve, reject) => {
      const req = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, ':authority': API_HOST, ...headers }, { endStream: body === undefined });
      let status = 0;
      let h: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on('response', (r) => ((h = r), (status = Number(r[':status']))));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status, headers: h, body: text, json: () => JSON.parse(text) });
      });
      req.on('error', reject);
      if (body !== undefined) req.end(body);
    }),
    10_000,
    `h2 ${path}`,
  );
}

const auth = () => ({ 'x-api-key': secret });

async function curl(args: string[]): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--cacert', join(env.dir, 'server-ca.crt'), '--resolve', `${API_HOST}:${proxy.port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{response_code}', '-H', `@${headerFile}`, '--max-time', '10', ...args], { timeout: 15_000 });
  return stdout.trim();
}

describe('HTTP/2 and HTTP/1.1 by ALPN on one port', () => {
  it('node:http2 negotiates h2 and is answered with the identity attached, forged identity stripped', async () => {
    const s = await connect();
    try {
      expect(s.alpnProtocol).toBe('h2');
      const r = await get(s, '/api/items/1', { ...auth(), 'x-keygate-account': 'forged', 'x-keygate-auth': 'mtls', 'x-forwarded-client-cert': 'Hash=forged' });
      expect(r.status).toBe(200);
      expect(r.headers['x-request-id']).toBeTruthy();
      const seen = r.json<{ headers: Record<string, string> }>().headers;
      expect(seen['x-keygate-account']).toBe('h2-client');
      expect(seen['x-keygate-auth']).toBe('api-key');
      expect(seen['x-forwarded-client-cert']).toBeUndefined();
      expect(seen['x-api-key']).toBeUndefined();
      // :authority reaches the upstream as Host; no pseudo-header leaks into its headers.
      expect(seen['host']).toBe(API_HOST);
      expect(Object.keys(seen).filter((k) => k.startsWith(':'))).toEqual([]);
      await eventually(() => readJsonLines(env.auditFile).some((l) => l.protocol === 'h2' && l.path === '/api/items/1' && l.status === 200), 5_000);
      const metrics = (await adminGet(proxy.adminPort, '/metrics')).body;
      expect(sample(metrics, 'keygate_requests_total', { account: 'h2-client', outcome: 'allowed', protocol: 'h2' })).toBeGreaterThanOrEqual(1);
    } finally {
      s.close();
    }
  });

  it('refused twin: no token, 401 problem+json over h2, never forwarded', async () => {
    const s = await connect();
    try {
      const before = env.upstream.received.length;
      const r = await get(s, '/api/items/1');
      expect(r.status).toBe(401);
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(r.headers['www-authenticate']).toBeTruthy();
      expect(r.json().code).toBe('KG_ERR_CREDENTIAL_MISSING');
      expect(env.upstream.received.length).toBe(before);
    } finally {
      s.close();
    }
  });

  it('a request body without content-length (END_STREAM decides) reaches an HTTP/1.1 upstream whole', async () => {
    const s = await connect();
    try {
      const r = await get(s, '/api/items', auth(), 'x'.repeat(100_000));
      expect(r.status).toBe(200);
      expect(r.json().bodyLength).toBe(100_000);
    } finally {
      s.close();
    }
  });

  it('curl --http2 gets HTTP/2, curl --http1.1 and node https get HTTP/1.1, on the same port', async () => {
    expect(await curl(['--http2', `https://${API_HOST}:${proxy.port}/api/items/1`])).toBe('2 200');
    expect(await curl(['--http1.1', `https://${API_HOST}:${proxy.port}/api/items/1`])).toBe('1.1 200');
    const h1 = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items/1', headers: auth() });
    expect(h1.status).toBe(200);
    expect(h1.json<{ headers: Record<string, string> }>().headers['x-keygate-account']).toBe('h2-client');
  });
});

describe('client certificates over HTTP/2', () => {
  it('the client-certificate host: a bound certificate is admitted as mtls, the twin without one gets 401', async () => {
    const s = await connect({ servername: MTLS_HOST, withCert: true });
    try {
      const r = await get(s, '/api/items/1', { ':authority': MTLS_HOST });
      expect(r.status).toBe(200);
      const seen = r.json<{ headers: Record<string, string> }>().headers;
      expect(seen['x-keygate-account']).toBe('h2-cert');
      expect(seen['x-keygate-auth']).toBe('mtls');
      expect(seen['x-forwarded-client-cert']).toContain(`Hash=${cert.fingerprint}`);
    } finally {
      s.close();
    }
    const bare = await connect({ servername: MTLS_HOST });
    try {
      const r = await get(bare, '/api/items/1', { ':authority': MTLS_HOST });
      expect([r.status, r.json().code]).toEqual([401, 'KG_ERR_CERT_MISSING']);
    } finally {
      bare.close();
    }
  });

  it('the dedicated client-certificate port speaks h2 too, in client-certificate mode whatever the name', async () => {
    const s = await connect({ port: proxy.clientAuthPort!, servername: API_HOST, withCert: true });
    try {
      expect(s.alpnProtocol).toBe('h2');
      const r = await get(s, '/api/items/1', { ':authority': API_HOST });
      expect(r.status).toBe(200);
      expect(r.json<{ headers: Record<string, string> }>().headers['x-keygate-auth']).toBe('mtls');
    } finally {
      s.close();
    }
    // Twin: without a certificate a token is no way in there.
    const bare = await connect({ port: proxy.clientAuthPort!, servername: API_HOST });
    try {
      const r = await get(bare, '/api/items/1', { ':authority': API_HOST, ...auth() });
      expect([r.status, r.json().code]).toEqual([401, 'KG_ERR_CERT_MISSING']);
    } finally {
      bare.close();
    }
  });
});

describe('421 per request on a coalesced connection', () => {
  it('one session, two :authority values: the one of the other mode is refused, the other served', async () => {
    const s = await connect({ servername: API_HOST });
    try {
      const before = env.upstream.received.length;
      const [ok, misdirected] = await Promise.all([get(s, '/api/items/1', { ...auth(), ':authority': API_HOST }), get(s, '/api/items/2', { ...auth(), ':authority': MTLS_HOST })]);
      expect(ok.status).toBe(200);
      expect(misdirected.status).toBe(421);
      expect(misdirected.json().code).toBe('KG_ERR_MISDIRECTED');
      expect(env.upstream.received.length).toBe(before + 1);
      expect(env.upstream.received.at(-1)!.url).toBe('/api/items/1');
    } finally {
      s.close();
    }
  });

  it('curl --http2 with a Host (:authority) of the other mode: 421', async () => {
    expect(await curl(['--http2', '-H', `Host: ${MTLS_HOST}`, `https://${API_HOST}:${proxy.port}/api/items/1`])).toBe('2 421');
  });
});

describe('HTTP/2 limits', () => {
  it('concurrent streams: the server announces listen.http2.maxConcurrentStreams and never runs more', async () => {
    const s = await connect();
    try {
      await eventually(() => s.remoteSettings.maxConcurrentStreams === 4, 2_000);
      heldMax = 0;
      const answers = Array.from({ length: 10 }, (_, i) => get(s, `/api/items/hold${i}`, auth()));
      await eventually(() => held.length === 4, 5_000);
      // Give any extra stream time to arrive: none may.
      await new Promise((r) => setTimeout(r, 300));
      expect(heldMax).toBe(4);
      // Release as they come; the client's queue drains 4 at a time.
      const releaser = setInterval(() => held.shift()?.writeHead(200, { 'content-length': '2' }).end('ok'), 20);
      try {
        const done = await Promise.all(answers);
        expect(done.map((d) => d.status)).toEqual(Array(10).fill(200));
      } finally {
        clearInterval(releaser);
      }
      expect(heldMax).toBe(4);
    } finally {
      s.close();
    }
  });

  it('a client that opens more streams than announced gets the extra ones refused; the limit still holds', async () => {
    // Requests written before the server's SETTINGS arrive, as if the peer allowed 100.
    heldMax = 0;
    const s = http2.connect(`https://127.0.0.1:${proxy.port}`, { ca: env.serverCa.certPem, servername: API_HOST, peerMaxConcurrentStreams: 100 });
    s.on('error', () => undefined);
    const outcomes = Array.from({ length: 12 }, (_, i) => get(s, `/api/items/hold-eager${i}`, auth()).then((r) => r.status, (e: Error & { code?: string }) => e.code ?? 'error'));
    try {
      await eventually(() => held.length >= 1, 5_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(heldMax).toBeLessThanOrEqual(4);
      const releaser = setInterval(() => held.shift()?.writeHead(200, { 'content-length': '2' }).end('ok'), 20);
      try {
        const results = await within(Promise.all(outcomes), 10_000, 'eager streams settle');
        expect(results.filter((r) => r !== 200).length).toBeGreaterThan(0);
      } finally {
        clearInterval(releaser);
      }
      expect(heldMax).toBeLessThanOrEqual(4);
    } finally {
      s.destroy();
      for (const r of held.splice(0)) r.destroy();
    }
  });

  it('a header list over listen.limits.maxHeaderSize: 431 problem+json, audited; far over it: the stream is reset', async () => {
    const s = await connect();
    try {
      const before = env.upstream.received.length;
      const r = await get(s, '/api/items/1', { ...auth(), 'x-big': 'a'.repeat(20_000) });
      expect(r.status).toBe(431);
      expect(r.json().code).toBe('KG_ERR_HEADERS_TOO_LARGE');
      const far = await get(s, '/api/items/1', { ...auth(), 'x-big': 'a'.repeat(40_000) }).then(
        (a) => a.status,
        (e: Error & { code?: string }) => e.code,
      );
      expect(far).not.toBe(200);
      expect(env.upstream.received.length).toBe(before);
      await eventually(() => readJsonLines(env.auditFile).some((l) => l.protocol === 'h2' && l.status === 431 && l.reason === 'KG_ERR_HEADERS_TOO_LARGE'), 5_000);
    } finally {
      s.destroy();
    }
    // Twin: a header list within the limit passes on a fresh connection.
    const t = await connect();
    try {
      expect((await get(t, '/api/items/1', { ...auth(), 'x-big': 'a'.repeat(8_000) })).status).toBe(200);
    } finally {
      t.close();
    }
  });

  it('more header fields than listen.http2.maxHeaderCount: reset; within it: served', async () => {
    const s = await connect();
    try {
      const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']));
      expect((await get(s, '/api/items/1', { ...auth(), ...many(90) })).status).toBe(200);
      const before = env.upstream.received.length;
      const over = await get(s, '/api/items/1', { ...auth(), ...many(120) }).then(
        (a) => a.status,
        (e: Error & { code?: string }) => e.code,
      );
      expect(over).not.toBe(200);
      expect(env.upstream.received.length).toBe(before);
    } finally {
      s.destroy();
    }
  });

  it('rapid reset: streams cancelled as soon as opened get the session closed (GOAWAY ENHANCE_YOUR_CALM)', async () => {
    const s = await connect();
    const goaway = signal<number>();
    s.on('goaway', (code: number) => goaway.resolve(code));
    s.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    // Each batch is written out before it is cancelled (Node's client drops a stream that is
    // cancelled before its HEADERS left), then reset before any answer: CVE-2023-44487's pattern.
    for (let round = 0; round < 20 && !s.closed && !s.destroyed; round++) {
      const batch = Array.from({ length: 4 }, (_, k) => {
        const req = s.request({ ':path': `/api/items/${round * 4 + k}`, ':authority': API_HOST, ...auth() });
        req.on('error', () => undefined);
        return req;
      });
      await new Promise((r) => setImmediate(r));
      for (const req of batch) req.close(http2.constants.NGHTTP2_CANCEL);
      await new Promise((r) => setImmediate(r));
    }
    expect(await within(goaway.promise, 5_000, 'GOAWAY')).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await within(closed, 5_000, 'session closed');
  });

  it('twin: as many streams that are answered keep the session open', async () => {
    const s = await connect();
    try {
      let goaway = false;
      s.on('goaway', () => (goaway = true));
      await eventually(() => s.remoteSettings.maxConcurrentStreams === 4, 2_000);
      for (let i = 0; i < 80; i += 4) await Promise.all(Array.from({ length: 4 }, (_, k) => get(s, `/api/items/${i + k}`, auth())));
      expect(goaway).toBe(false);
      expect(s.closed).toBe(false);
    } finally {
      s.close();
    }
  });

  it('idle timeout: a session without streams is closed with GOAWAY; one with a stream in flight is not', async () => {
    const idle = await connect();
    const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    const busy = await connect();
    try {
      const answer = get(busy, '/api/items/hold-idle', auth());
      await eventually(() => held.length === 1, 5_000);
      await within(idleClosed, 5_000, 'idle session closed');
      expect(busy.closed).toBe(false);
      held.shift()!.writeHead(200, { 'content-length': '2' }).end('ok');
      expect((await answer).status).toBe(200);
    } finally {
      busy.close();
    }
  });
});

describe('stream timeouts', () => {
  it('an upload that stalls: 408 problem+json once listen.http2.streamIdleTimeout passed, the stream ended, audited', async () => {
    const s = await connect();
    try {
      const answer = within(
        new Promise<H2Answer>((resolve, reject) => {
          const req = s.request({ ':method': 'POST', ':path': '/api/items', ':authority': API_HOST, ...auth() });
          let status = 0;
          let h: http2.IncomingHttpHeaders = {};
          let text = '';
          req.setEncoding('utf8');
          req.on('response', (r) => ((h = r), (status = Number(r[':status']))));
          req.on('data', (c: string) => (text += c));
          req.on('close', () => resolve({ status, headers: h, body: text, json: () => JSON.parse(text) }));
          req.on('error', reject);
          req.write('the first part, and then nothing'); // never ended
        }),
        10_000,
        'stalled upload answered',
      );
      const r = await answer;
      expect(r.status).toBe(408);
      expect(r.json()).toMatchObject({ code: 'KG_ERR_REQUEST_TIMEOUT', detail: 'The HTTP/2 stream was idle longer than listen.http2.streamIdleTimeout.' });
      await eventually(() => readJsonLines(env.auditFile).some((l) => l.protocol === 'h2' && l.status === 408 && l.reason === 'KG_ERR_REQUEST_TIMEOUT'), 5_000);
    } finally {
      s.destroy();
    }
  });
});

describe('drain', () => {
  it('SIGTERM: GOAWAY to HTTP/2 clients, the stream in flight finishes, exit 0', async () => {
    const s = await connect();
    s.on('error', () => undefined);
    const goaway = signal();
    s.on('goaway', () => goaway.resolve());
    const answer = get(s, '/api/items/hold-drain', auth());
    await eventually(() => held.length === 1, 5_000);
    const exit = proxy.stop('SIGTERM', 20_000);
    await within(goaway.promise, 5_000, 'GOAWAY on drain');
    held.shift()!.writeHead(200, { 'content-length': '8' }).end('finished');
    const r = await answer;
    expect(r.status).toBe(200);
    expect(r.body).toBe('finished');
    expect(await within(exit, 15_000, 'exit')).toBe(0);
  });
});

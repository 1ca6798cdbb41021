// Bodies are streamed both ways, never buffered whole: a 32 MiB upload and a 32 MiB download
// pass with matching size and hash, and each side sees the first bytes while the other is
// still holding the rest back. The hand-over is a bounded exchange of events, not timing: a
// proxy that buffered would deadlock the exchange and fail the bound.
import { createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { SETUP_TIMEOUT_MS, seedToken, signal, startUpstream, type PlainUpstream, within } from './support.js';

const MiB = 1024 * 1024;
const TOTAL = 32 * MiB;
const CHUNK = 256 * 1024;

let env: TestEnv;
let proxy: ChildProxy;
let upstream: PlainUpstream;
let secret: string;

// Set per test: what the upstream signals and waits for.
let uploadSeen = signal();
let downloadGo = signal();
let downloadSent = { bytes: 0, sha256: '' };

beforeAll(async () => {
  env = await createTestEnv();
  upstream = await startUpstream((req, res) => {
    if (req.url === '/api/upload') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        if (bytes === 0) uploadSeen.resolve();
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        const out = JSON.stringify({ bytes, sha256: hash.digest('hex') });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
        res.end(out);
      });
      return;
    }
    if (req.url === '/api/download') {
      const hash = createHash('sha256');
      let bytes = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) });
      const send = (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
        return res.write(c);
      };
      // First 1 MiB, then nothing more until the client confirms it has received bytes.
      for (let i = 0; i < MiB / CHUNK; i++) send(randomBytes(CHUNK));
      void downloadGo.promise.then(async () => {
        while (bytes < TOTAL) {
          if (!send(randomBytes(CHUNK))) await new Promise((r) => res.once('drain', r));
        }
        downloadSent = { bytes, sha256: hash.digest('hex') };
        res.end();
      });
      return;
    }
    res.writeHead(404).end();
  });
  env.writeConfig({ routes: [{ pathPrefix: '/api', upstream: upstream.url }], scopes: { any: ['* /**'] } });
  secret = (await seedToken(env, 'svc', { scopes: ['any'] })).secret;
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(async () => {
  await upstream.close();
  await env.cleanup();
});

function open(method: string, path: string, headers: Record<string, string | number> = {}) {
  return https.request({ host: '127.0.0.1', port: proxy.port, servername: 'api.test', ca: env.serverCa.certPem, method, path, agent: false, headers: { host: 'api.test', 'x-api-key': secret, ...headers } });
}

describe('streaming', () => {
  it('an upload reaches the upstream while the client is still sending, intact', async () => {
    uploadSeen = signal();
    const req = open('POST', '/api/upload', { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
    });
    const hash = createHash('sha256');
    let sent = 0;
    const write = async (c: Buffer) => {
      hash.update(c);
      sent += c.length;
      if (!req.write(c)) await new Promise((r) => req.once('drain', r));
    };
    for (let i = 0; i < MiB / CHUNK; i++) await write(randomBytes(CHUNK));
    // 1 MiB of 32 sent: the upstream must see bytes now, before the client sends any more.
    await within(uploadSeen.promise, 10_000, 'upstream saw the first bytes of the upload');
    expect(sent).toBe(MiB);
    while (sent < TOTAL) await write(randomBytes(CHUNK));
    req.end();
    const res = await within(answer, 30_000, 'upload answer');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ bytes: TOTAL, sha256: hash.digest('hex') });
  });

  it('a download reaches the client while the upstream is still holding the rest, intact', async () => {
    downloadGo = signal();
    const req = open('GET', '/api/download');
    const result = new Promise<{ status: number; bytes: number; sha256: string }>((resolve, reject) => {
      req.on('response', (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          // The upstream has sent 1 MiB and waits for this before sending the rest.
          if (bytes === 0) downloadGo.resolve();
          bytes += c.length;
          hash.update(c);
        });
        res.on('end', () => resolve({ status: res.statusCode!, bytes, sha256: hash.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    req.end();
    await within(downloadGo.promise, 10_000, 'client saw the first bytes of the download');
    const got = await within(result, 30_000, 'download');
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(TOTAL);
    expect(downloadSent.bytes).toBe(TOTAL);
    expect(got.sha256).toBe(downloadSent.sha256);
  });
});

// A small echo API for the demo: answers every request with what it received — method, path,
// query and headers — so a user sees exactly the identity keygate forwarded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoServer {
  server: http.Server;
  address: AddressInfo;
  close(): Promise<void>;
}

export async function startEchoUpstream(port: number, host = '127.0.0.1'): Promise<EchoServer> {
  const server = http.createServer((req, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
    });
    req.on('end', () => {
      const [path, query] = (req.url ?? '/').split('?', 2);
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}\n');
        return;
      }
      const identity = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('x-keygate-') || k === 'x-forwarded-client-cert' || k === 'x-request-id'));
      const body = JSON.stringify({ message: 'hello from the demo API behind keygate', method: req.method, path, query: query ?? null, bodyBytes: size, identity, headers: req.headers }, null, 2) + '\n';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

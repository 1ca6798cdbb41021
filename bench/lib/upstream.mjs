// The benchmark's upstream: a plain keep-alive HTTP server answering ~100 bytes of JSON, so
// that what is measured is the proxy, not the API behind it. A path ending in /echo answers
// with the identity headers it received instead; the functional checks read those.
// Prints {"port":N} on stdout once listening on 127.0.0.1 (port 0: the kernel picks).
// Exits on SIGTERM/SIGINT and when its parent goes away (stdin closes).
import http from 'node:http';

const BODY = Buffer.from(JSON.stringify({ ok: true, service: 'bench-upstream', message: 'hello from the upstream', items: [1, 2, 3], pad: 'xx' }));
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };
const ECHOED = ['x-keygate-account', 'x-keygate-credential', 'x-keygate-auth', 'x-keygate-scopes', 'x-forwarded-client-cert', 'x-forwarded-for', 'x-forwarded-proto', 'x-request-id', 'x-api-key', 'authorization'];

const server = http.createServer((req, res) => {
  if (req.url.endsWith('/echo')) {
    const seen = { path: req.url };
    for (const h of ECHOED) if (req.headers[h] !== undefined) seen[h] = req.headers[h];
    const body = JSON.stringify(seen);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
    return;
  }
  // Drain any request body before answering, so the connection stays reusable.
  if (req.headers['content-length'] || req.headers['transfer-encoding']) req.resume();
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
// Longer than any client's idle time, so the proxy's pool never races a server-side close.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

const bye = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', bye);
process.on('SIGINT', bye);
process.stdin.on('end', bye);
process.stdin.on('error', bye);
process.stdin.resume();

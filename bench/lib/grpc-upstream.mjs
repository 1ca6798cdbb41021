// The benchmark's gRPC upstream: a @grpc/grpc-js server on h2c answering bench.Echo/Unary with
// a ~100-byte message (the size of the HTTP upstream's answer), so that what is measured is
// the proxy. Messages are opaque bytes: no .proto needed. Prints {"port":N} on stdout once
// listening on 127.0.0.1 (port 0: the kernel picks). Exits on SIGTERM/SIGINT and when its
// parent goes away (stdin closes).
import * as grpc from '@grpc/grpc-js';

const identity = (b) => b;
const ANSWER = Buffer.from(JSON.stringify({ ok: true, service: 'bench-upstream', message: 'hello from the upstream', items: [1, 2, 3], pad: 'xx' }));
const server = new grpc.Server();
server.addService(
  { unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
  {
    unary: (call, cb) => {
      // The identity keygate attached, for the functional check.
      if (call.metadata.get('x-bench-echo').length) cb(null, Buffer.from(JSON.stringify({ account: call.metadata.get('x-keygate-account')[0] ?? null })));
      else cb(null, ANSWER);
    },
  },
);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`grpc upstream: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ port }) + '\n');
});

const bye = () => {
  server.forceShutdown();
  process.exit(0);
};
process.on('SIGTERM', bye);
process.on('SIGINT', bye);
process.stdin.on('end', bye);
process.stdin.on('error', bye);
process.stdin.resume();

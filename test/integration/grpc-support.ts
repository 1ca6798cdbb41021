// A real gRPC service for the tests (@grpc/grpc-js server and client), without .proto files:
// messages are JSON, serialized by the service definition itself, which is all grpc-js needs.
// The server records every call it saw — metadata, deadline, whether it was cancelled — so a
// test can tell what reached the upstream and what never did.
import * as grpc from '@grpc/grpc-js';

export interface Msg {
  text: string;
  n?: number;
}

const json = {
  serialize: (v: Msg): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): Msg => JSON.parse(b.toString('utf8')) as Msg,
};

function method(path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Msg, Msg> {
  return { path, requestStream, responseStream, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize, originalName: path.slice(path.lastIndexOf('/') + 1) };
}

/** Service `<pkg>.Echo`: one method of each kind, a slow one, and one no scope allows. */
function echoService(pkg: string) {
  return {
    unary: method(`/${pkg}.Echo/Unary`, false, false),
    collect: method(`/${pkg}.Echo/Collect`, true, false),
    count: method(`/${pkg}.Echo/Count`, false, true),
    chat: method(`/${pkg}.Echo/Chat`, true, true),
    slow: method(`/${pkg}.Echo/Slow`, false, false),
    secret: method(`/${pkg}.Echo/Secret`, false, false),
  } satisfies grpc.ServiceDefinition;
}
export const ECHO = echoService('test');

export interface SeenCall {
  method: string;
  metadata: Record<string, string>;
  /** ms from the call's arrival to its deadline (Infinity without one). */
  deadlineMs: number;
  cancelled: boolean;
}

export interface EchoServer {
  port: number;
  calls: SeenCall[];
  close(): Promise<void>;
}

function record(calls: SeenCall[], name: string, call: grpc.ServerUnaryCall<Msg, Msg> | grpc.ServerReadableStream<Msg, Msg> | grpc.ServerWritableStream<Msg, Msg> | grpc.ServerDuplexStream<Msg, Msg>): SeenCall {
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.metadata.getMap())) md[k] = String(v);
  const d = call.getDeadline();
  const seen: SeenCall = { method: name, metadata: md, deadlineMs: d instanceof Date ? d.getTime() - Date.now() : d === Infinity ? Infinity : Number(d) - Date.now(), cancelled: false };
  (call as grpc.ServerUnaryCall<Msg, Msg>).on('cancelled', () => (seen.cancelled = true));
  calls.push(seen);
  return seen;
}

export async function startEchoServer(credentials = grpc.ServerCredentials.createInsecure(), packages = ['test']): Promise<EchoServer> {
  const calls: SeenCall[] = [];
  const server = new grpc.Server();
  for (const pkg of packages) addEcho(server, calls, pkg);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    calls,
    // Not tryShutdown: it would wait for keygate's sessions to go away.
    close: async () => server.forceShutdown(),
  };
}

function addEcho(server: grpc.Server, calls: SeenCall[], pkg: string): void {
  server.addService(echoService(pkg), {
    unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      const seen = record(calls, 'unary', call);
      cb(null, { text: `echo ${call.request.text}`, n: seen.deadlineMs === Infinity ? -1 : seen.deadlineMs });
    },
    collect: (call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      record(calls, 'collect', call);
      const texts: string[] = [];
      call.on('data', (m: Msg) => texts.push(m.text));
      call.on('end', () => cb(null, { text: texts.join(','), n: texts.length }));
    },
    count: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      record(calls, 'count', call);
      const n = call.request.n ?? 3;
      let i = 0;
      // Paced, so a client can cancel in the middle; bounded by n.
      const timer = setInterval(() => {
        if (call.cancelled) return clearInterval(timer);
        if (i === n) {
          clearInterval(timer);
          const trailing = new grpc.Metadata();
          trailing.set('x-count-done', String(n));
          call.end(trailing);
          return;
        }
        call.write({ text: `item ${i}`, n: i++ });
      }, 20);
      call.on('cancelled', () => clearInterval(timer));
    },
    chat: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
      record(calls, 'chat', call);
      call.on('data', (m: Msg) => call.write({ text: `re: ${m.text}` }));
      call.on('end', () => call.end());
    },
    slow: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      record(calls, 'slow', call);
      const t = setTimeout(() => cb(null, { text: 'late' }), call.request.n ?? 2_000);
      call.on('cancelled', () => clearTimeout(t));
    },
    secret: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      record(calls, 'secret', call);
      cb(null, { text: 'secret' });
    },
  });
}

export const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
export type EchoClientInstance = InstanceType<typeof EchoClient>;

/** A client of keygate's TLS port: trusts the test server CA, SNI and :authority as given. */
export function echoClient(port: number, ca: string, opts: { servername?: string; authority?: string } = {}): EchoClientInstance {
  return new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(ca)), {
    'grpc.ssl_target_name_override': opts.servername ?? 'api.test',
    'grpc.default_authority': opts.authority ?? opts.servername ?? 'api.test',
  });
}

/** A client for single methods under another path (other routes): `{ unary: '/tls.Echo/Unary' }`. */
export function clientAt(port: number, ca: string, paths: { unary?: string; count?: string }): { unary(m: Msg, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: Msg) => void): void; count(m: Msg, md: grpc.Metadata): grpc.ClientReadableStream<Msg>; close(): void } {
  const def: Record<string, grpc.MethodDefinition<Msg, Msg>> = {};
  if (paths.unary) def['unary'] = { ...ECHO.unary, path: paths.unary };
  if (paths.count) def['count'] = { ...ECHO.count, path: paths.count };
  const Ctor = grpc.makeGenericClientConstructor(def, 'Other');
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(ca)), { 'grpc.ssl_target_name_override': 'api.test' }) as never;
}

export function metadata(entries: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) md.set(k, v);
  return md;
}

/** A unary call as a promise: the answer, or the ServiceError. */
export function unary(client: EchoClientInstance, name: 'unary' | 'slow' | 'secret', msg: Msg, md: grpc.Metadata, opts: grpc.CallOptions = {}): Promise<Msg> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (m: Msg, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Msg) => void) => void>)[name]!(msg, md, opts, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

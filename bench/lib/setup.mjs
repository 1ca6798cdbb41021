// Prepares what the benchmarked keygate runs with, in a temporary folder: a freshly minted PKI
// (server CA + server certificate, client CA + one client certificate), a keygate.yaml in
// which everything on the request path is switched on (TLS, a real scope rule, a rate policy,
// audit to a file, the admin listener serving /metrics), and credentials created with the real
// CLI — the same steps an operator takes.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const ACCOUNT = 'bench';
export const CLIENT_CN = 'bench-client';
/** Allowed by the account's role; what the load generator requests. */
export const BENCH_PATH = '/api/v1/items/42';
/** Not covered by any of the account's scopes (the 403 check). */
export const DENIED_PATH = '/api/v1/orders/1';

/** Mints the PKI with keygate's own compiled PKI code (dist/pki). */
export async function mintPki(distDir, dir) {
  const { initDevPki } = await import(join(distDir, 'pki/dev-pki.js'));
  const { loadAuthority, issueClientCertificate } = await import(join(distDir, 'pki/pki.js'));
  // "localhost" also yields clientauth.localhost and 127.0.0.1 in the server certificate.
  const files = await initDevPki(dir, ['localhost'], { days: 2 });
  const clientCa = await loadAuthority(await readFile(files.clientCaCert, 'utf8'), await readFile(files.clientCaKey, 'utf8'));
  const client = await issueClientCertificate(clientCa, { commonName: CLIENT_CN, days: 2 });
  const clientCert = join(dir, 'client.crt');
  const clientKey = join(dir, 'client.key');
  await writeFile(clientCert, client.certPem);
  await writeFile(clientKey, client.keyPem, { mode: 0o600 });
  return { ...files, clientCert, clientKey, clientFingerprint: client.fingerprint };
}

/** The gRPC method of the h2/gRPC rows (bench/lib/grpc-upstream.mjs). */
export const GRPC_PATH = '/bench.Echo/Unary';

/**
 * keygate.yaml for the benchmark. Ports are 0 (the kernel picks); everything binds 127.0.0.1.
 * With `grpcPort`, a route to the gRPC upstream over h2c and a scope for its method.
 */
export function benchConfig({ upstreamPort, auditFile, grpcPort, workers = 1 }) {
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  const grpcRoute = grpcPort ? `\n  - { pathPrefix: /bench.Echo, upstream: "http://127.0.0.1:${grpcPort}", protocol: h2c, timeout: 30s }` : '';
  const grpcScope = grpcPort ? `\n  grpc:call:   [POST /bench.Echo/*]` : '';
  const reader = grpcPort ? '[items:read, grpc:call]' : '[items:read]';
  return `# Written by bench/run.mjs for one benchmark run.
listen:
  host: 127.0.0.1
  port: 0
  tls: { cert: pki/server.crt, key: pki/server.key }
  clientAuth:
    ca: pki/client-ca.crt
    port: 0                      # dedicated client-certificate port (no SNI needed)
admin: { host: 127.0.0.1, port: 0 }
routes:
  - { pathPrefix: /healthz, upstream: "${upstream}", public: true }${grpcRoute}
  - { pathPrefix: /, upstream: "${upstream}", timeout: 30s }
scopes:
  items:read:  [GET /api/v1/items, GET /api/v1/items/**]
  items:write: [POST /api/v1/items, DELETE /api/v1/items/*]
  orders:read: [GET /api/v1/orders/**]${grpcScope}
roles:
  reader: ${reader}
policies:
  # Enforced on every request (a bucket is taken), but far above what one core can serve, so
  # the limiter costs what it costs without ever answering 429.
  default: { rate: 1000000/s, burst: 1000000 }
authFailures: { rate: 1000/s, burst: 1000 }
store: { file: credentials.yaml }
audit: { output: "${auditFile}" }
shutdown: { drainTimeout: 2s }
workers: ${workers}
`;
}

async function keygate(cli, configFile, args) {
  const { stdout } = await run(process.execPath, [cli, ...args, '-c', configFile], { timeout: 30_000, maxBuffer: 1 << 20 });
  return stdout;
}

/**
 * Creates the account and its token with the CLI, and binds the client certificate by CN —
 * with `keygate cert bind` when this build has it, else by adding the binding record to the
 * credential file (store/types.ts CertBindingRecord) before the proxy starts.
 */
export async function createCredentials(cli, configFile, credentialFile) {
  await keygate(cli, configFile, ['account', 'create', '--name', ACCOUNT, '--role', 'reader', '--description', 'npm run bench']);
  const created = JSON.parse(await keygate(cli, configFile, ['token', 'create', '--account', ACCOUNT, '--label', 'bench', '--json']));
  let bindVia = 'cli';
  try {
    await keygate(cli, configFile, ['cert', 'bind', '--account', ACCOUNT, '--cn', CLIENT_CN]);
  } catch {
    bindVia = 'file';
    const YAML = (await import('yaml')).default;
    const data = YAML.parse(await readFile(credentialFile, 'utf8'));
    data.certificates = data.certificates ?? [];
    data.certificates.push({
      id: 'crt_bench0001',
      account: ACCOUNT,
      match: 'cn',
      value: CLIENT_CN,
      nickname: 'bench',
      endDate: null,
      scopes: null,
      policy: null,
      createdAt: new Date().toISOString(),
      serial: null,
      notAfter: null,
    });
    await writeFile(credentialFile, YAML.stringify(data), { mode: 0o600 });
  }
  return { token: created.token, tokenId: created.id, bindVia };
}

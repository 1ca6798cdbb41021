// The container image's runtime stage, reproduced on disk (there is no Docker engine here):
// the package as `npm pack` ships it, its production dependencies from the lock file
// (`npm ci --omit=dev`, as the Dockerfile does), deploy/docker/keygate.yaml on a read-only
// config folder laid out as docs/container.md says, a writable data folder, and the
// Dockerfile's own ENTRYPOINT, CMD and HEALTHCHECK run as a non-root user. Skipped user
// switch (with a note) when the suite does not run as root.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoUpstream, type EchoUpstream } from '../helpers/echo-upstream.js';
import { request } from '../helpers/harness.js';
import { mintCa, mintServer } from '../helpers/pki.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const IS_ROOT = process.getuid?.() === 0;
/** nobody: a uid that owns nothing on this machine, as uid 1000 owns nothing in the image. */
const RUNTIME_UID = 65534;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function mustRun(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<Result> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${r.stderr}`);
  return r;
}

/** The JSON array of a Dockerfile instruction (exec form), e.g. ENTRYPOINT ["node", "…"]. */
function instruction(name: 'ENTRYPOINT' | 'CMD' | 'HEALTHCHECK'): string[] {
  // HEALTHCHECK's options come first, and its CMD may be on a continuation line.
  const pattern = name === 'HEALTHCHECK' ? /^HEALTHCHECK\b[^\n]*\\\n\s*CMD (\[.*\])$/m : new RegExp(`^${name} (\\[.*\\])$`, 'm');
  const m = DOCKERFILE.match(pattern);
  if (!m) throw new Error(`Dockerfile has no ${name} in exec form`);
  return JSON.parse(m[1]!) as string[];
}

/** Every file and folder under `dir` with its size and modification time. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const s = statSync(p);
      out.push(`${relative(dir, p)} ${s.size} ${s.mtimeMs}`);
      if (s.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

describe('the image runtime stage, on disk', () => {
  let work: string;
  let app: string;
  let etc: string;
  let data: string;
  let node: string;
  let upstream: EchoUpstream;
  let serverCaPem: string;
  let env: NodeJS.ProcessEnv;
  const children: ChildProcess[] = [];

  /** Maps the image's paths to the ones on disk, and runs `node` as the runtime user. */
  const inImage = (argv: string[]): [string, string[]] => {
    const mapped = argv.map((a) => (a === 'node' ? node : a.replace(/^\/app\//, `${app}/`).replace(/^\/etc\/keygate\//, `${etc}/`)));
    return IS_ROOT ? ['setpriv', [`--reuid=${RUNTIME_UID}`, `--regid=${RUNTIME_UID}`, '--clear-groups', ...mapped]] : [mapped[0]!, mapped.slice(1)];
  };
  const keygate = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
    const [cmd, argv] = inImage([...instruction('ENTRYPOINT'), ...args]);
    return run(cmd, argv, { env: { ...env, ...extraEnv }, cwd: app });
  };

  beforeAll(async () => {
    const started = Date.now();
    work = mkdtempSync(join(tmpdir(), 'keygate-runtime-'));
    chmodSync(work, 0o755);

    // Build stage: the package exactly as `npm pack` ships it (dist/ is built by `npm test`).
    // --ignore-scripts: `prepare` would rebuild dist/ under the other tests' feet.
    const packed = await mustRun('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, timeoutMs: 60_000 });
    const [{ filename }] = JSON.parse(packed.stdout) as Array<{ filename: string }>;

    // Runtime stage: the package, the lock file, production dependencies only.
    app = join(work, 'app');
    mkdirSync(app);
    await mustRun('tar', ['-xzf', join(work, filename!), '--strip-components=1', '-C', app]);
    copyFileSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    await mustRun('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, timeoutMs: 90_000 });

    // /etc/keygate as docs/container.md lays it out: the example config and the TLS files.
    etc = join(work, 'etc-keygate');
    mkdirSync(join(etc, 'tls'), { recursive: true });
    copyFileSync(join(ROOT, 'deploy/docker/keygate.yaml'), join(etc, 'keygate.yaml'));
    const serverCa = await mintCa('runtime-stage server CA');
    const server = await mintServer(serverCa.authority, ['localhost']);
    const clientCa = await mintCa('runtime-stage client CA');
    serverCaPem = serverCa.certPem;
    writeFileSync(join(etc, 'tls/server.crt'), server.certPem + serverCa.certPem);
    writeFileSync(join(etc, 'tls/server.key'), server.keyPem, { mode: 0o400 });
    writeFileSync(join(etc, 'tls/client-ca.crt'), clientCa.certPem);
    // Read-only, as a `:ro` mount: the runtime user may read the key (it owns only that file,
    // as it must own or be granted it in the image) and write nothing anywhere in the folder.
    for (const f of ['keygate.yaml', 'tls/server.crt', 'tls/client-ca.crt']) chmodSync(join(etc, f), 0o444);
    if (IS_ROOT) chownSync(join(etc, 'tls/server.key'), RUNTIME_UID, RUNTIME_UID);
    chmodSync(join(etc, 'tls'), 0o555);
    chmodSync(etc, 0o555);

    // /var/lib/keygate: the one writable place, owned by the runtime user.
    data = join(work, 'var-lib-keygate');
    mkdirSync(data, { mode: 0o700 });
    if (IS_ROOT) chownSync(data, RUNTIME_UID, RUNTIME_UID);

    // The Node binary must be reachable by the runtime user; a checkout in a private folder
    // (or Node 24 from .cache/) may not be, so fall back to a copy in the work folder.
    node = process.execPath;
    if (IS_ROOT && (await run('setpriv', [`--reuid=${RUNTIME_UID}`, `--regid=${RUNTIME_UID}`, '--clear-groups', node, '-e', '0'])).code !== 0) {
      mkdirSync(join(work, 'bin'));
      copyFileSync(node, join(work, 'bin/node'));
      chmodSync(join(work, 'bin/node'), 0o755);
      node = join(work, 'bin/node');
    }
    if (!IS_ROOT) console.info(`runtime-stage: not root, so the commands run as uid ${process.getuid?.()} without a user switch`);

    upstream = await startEchoUpstream();
    // The container's environment: the Dockerfile's ENV and the documented knobs, nothing
    // inherited but PATH. TMPDIR and HOME point nowhere, so any write outside the data folder
    // (a read-only root file system in the image) fails the test.
    env = {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      KEYGATE_CONFIG: join(etc, 'keygate.yaml'),
      KEYGATE_HOST: '127.0.0.1',
      KEYGATE_PORT: '0',
      KEYGATE_ADMIN_PORT: '0',
      KEYGATE_UPSTREAM: upstream.url,
      KEYGATE_STORE_FILE: join(data, 'credentials.yaml'),
      TMPDIR: join(work, 'no-such-tmp'),
      HOME: join(work, 'no-such-home'),
    };
    console.info(`runtime-stage: pack and production install took ${Date.now() - started} ms`);
  }, 150_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await upstream?.close();
    if (work) {
      // Give the owner its write bits back, so that a non-root run can delete the folder.
      for (const d of [join(work, 'etc-keygate/tls'), join(work, 'etc-keygate')]) if (existsSync(d)) chmodSync(d, 0o755);
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('has the package with its production dependencies only', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', dep, 'package.json')), dep).toBe(true);
    for (const dep of Object.keys(pkg.devDependencies)) expect(existsSync(join(app, 'node_modules', dep)), `dev dependency ${dep}`).toBe(false);
    expect(existsSync(join(app, 'dist/cli/keygate.js'))).toBe(true);
    for (const absent of ['src', 'test', 'bench', 'certs-dev', 'deploy']) expect(existsSync(join(app, absent)), absent).toBe(false);
  });

  it('is the Node 24 image, non-root, with the command this test runs', () => {
    expect(DOCKERFILE).toMatch(/^ARG NODE_IMAGE=node:24-[a-z]+-slim$/m);
    expect(DOCKERFILE).toMatch(/npm ci --omit=dev/);
    const user = DOCKERFILE.match(/^USER (\d+):(\d+)$/m);
    expect(Number(user?.[1])).toBeGreaterThan(0);
    // No -c: serve (like every command in the image) finds the config through KEYGATE_CONFIG.
    expect(instruction('CMD')).toEqual(['serve']);
    expect(DOCKERFILE).toMatch(/KEYGATE_CONFIG=\/etc\/keygate\/keygate\.yaml/);
  });

  it('check accepts the example config as the runtime user, and names a missing file', async () => {
    const ok = await keygate(['check', '-c', '/etc/keygate/keygate.yaml']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(': ok');

    const missing = await keygate(['check', '-c', '/etc/keygate/keygate.yaml'], { KEYGATE_TLS_KEY: 'tls/absent.key' });
    expect(missing.code).toBe(1);
    expect(missing.stderr + missing.stdout).toContain('absent.key');
    noStackTrace(missing.stderr);
  });

  it('a command without -c uses KEYGATE_CONFIG, and says so when the store is not there yet', async () => {
    // The working folder is /app, which holds the package's example config/keygate.yaml:
    // KEYGATE_CONFIG (set by the image) comes first.
    const r = await keygate(['token', 'list']);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`keygate: config ${join(etc, 'keygate.yaml')}: no credential store at ${join(data, 'credentials.yaml')}: create one with keygate account create\n`);
  });

  it('management commands write to the data folder and nowhere else', async () => {
    const before = snapshot(etc);
    const created = await keygate(['account', 'create', '--name', 'deployer', '--role', 'viewer', '--role', 'admin', '-c', '/etc/keygate/keygate.yaml']);
    // audit.output is stdout (the proxy's stream): the CLI prints no audit line, only the record
    // and a confirmation.
    expect(created.stderr).toBe('account "deployer" created\n');
    expect(created.stdout).toMatch(/^name +deployer$/m);
    expect(created.code).toBe(0);
    const listed = await keygate(['account', 'list', '--format', 'json']);
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((a) => a.name)).toEqual(['deployer']);
    const store = statSync(join(data, 'credentials.yaml'));
    if (IS_ROOT) expect(store.uid).toBe(RUNTIME_UID);
    expect(snapshot(etc)).toEqual(before);

    // Refused twin: a credential file in the read-only config folder cannot be written.
    const readOnly = await keygate(['account', 'create', '--name', 'other', '-c', '/etc/keygate/keygate.yaml'], { KEYGATE_STORE_FILE: join(etc, 'credentials.yaml') });
    expect(readOnly.code).toBe(5);
    expect(readOnly.stderr).toContain(`the credential file ${join(etc, 'credentials.yaml')} is read-only here (EACCES: keygate's user may not write in ${etc})`);
    noStackTrace(readOnly.stderr);
    expect(snapshot(etc)).toEqual(before);
  });

  it('serve runs as the runtime user, answers, passes the health check and drains on SIGTERM', async () => {
    const token = await keygate(['token', 'create', '--account', 'deployer', '-c', '/etc/keygate/keygate.yaml']);
    expect(token.code).toBe(0);
    const secret = token.stdout.trim();
    expect(secret).toMatch(/^kg_/);

    const before = snapshot(etc);
    const [cmd, argv] = inImage([...instruction('ENTRYPOINT'), ...instruction('CMD')]);
    const child = spawn(cmd, argv, { env, cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const listening = await new Promise<{ https: string; admin: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start within 15 s:\n${stderr}`)), 15_000);
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d;
        const line = stderr.split('\n').find((l) => l.includes('keygate listening'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as { https: string; admin: string });
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`serve exited with ${code}:\n${stderr}`));
      });
    });
    const port = Number(listening.https.slice(listening.https.lastIndexOf(':') + 1));
    const adminPort = Number(listening.admin.slice(listening.admin.lastIndexOf(':') + 1));

    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const uid = Number(status.match(/^Uid:\s+(\d+)/m)![1]);
    expect(uid).toBe(IS_ROOT ? RUNTIME_UID : process.getuid?.());

    // The image's own HEALTHCHECK, pointed at this admin port.
    const [hcCmd, hcArgs] = inImage(instruction('HEALTHCHECK'));
    const healthUrl = `http://127.0.0.1:${adminPort}/healthz`;
    expect((await run(hcCmd, hcArgs, { env: { ...env, KEYGATE_HEALTH_URL: healthUrl } })).code).toBe(0);

    const call = (opts: { path: string; method?: string; token?: string }) =>
      request({ port, servername: 'localhost', ca: serverCaPem, method: opts.method, path: opts.path, headers: opts.token ? { 'x-api-key': opts.token } : {} });
    const allowed = await call({ path: '/api/items', token: secret });
    expect(allowed.status).toBe(200);
    expect(upstream.received.at(-1)?.headers['x-keygate-account']).toBe('deployer');
    expect((await call({ path: '/api/items' })).status).toBe(401);
    expect((await call({ path: '/api/items', method: 'POST', token: secret })).status).toBe(403);

    // The admin API on the writable store: a change through it lands in the data folder.
    const adminCreate = await fetch(`http://127.0.0.1:${adminPort}/admin/v1/accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'from-admin-api', roles: ['viewer'] }),
    });
    expect(adminCreate.status).toBe(201);
    expect(readFileSync(join(data, 'credentials.yaml'), 'utf8')).toContain('from-admin-api');

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).not.toMatch(/EACCES|EROFS|ENOENT/);
    expect(snapshot(etc)).toEqual(before);
    // Refused twin of the health check: nothing listens any more.
    expect((await run(hcCmd, hcArgs, { env: { ...env, KEYGATE_HEALTH_URL: healthUrl } })).code).toBe(1);
  }, 40_000);
});

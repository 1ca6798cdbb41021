// The admin API on a credential store it cannot write — the Kubernetes sidecar layout mounts the
// credential Secret read-only. Reads keep working; every change is 405 KG_ERR_STORE_READ_ONLY
// with a detail that names the file and the cause and an Allow header of what still works,
// nothing is changed, and the CLI says the same with exit 5. The refused twin: the same change
// once the folder is writable is a 201.
//
// Nothing is mounted: the credential folder is made unwritable for the user keygate runs as.
// chmod does not stop root, so when the suite runs as root keygate (and the CLI) run as nobody
// through setpriv, as test/deploy/runtime-stage.test.ts does; then the cause is EACCES, as
// EROFS would be on a read-only mount (both are KG_ERR_STORE_READ_ONLY, store/file/fs-fault.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, createTestEnv, type TestEnv } from '../helpers/harness.js';

const IS_ROOT = process.getuid?.() === 0;
const NOBODY = 65534;

let env: TestEnv;
let child: ChildProcess | undefined;
let adminPort = 0;
let credsDir: string;
let credFile: string;
let admin: { secret: string; id: string };
let victim: { secret: string; id: string };

/** The command as the user keygate runs as here: nobody when the suite is root. */
const asRuntimeUser = (argv: string[]): [string, string[]] => (IS_ROOT ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv]] : [argv[0]!, argv.slice(1)]);

function startProxy(): Promise<number> {
  const [cmd, args] = asRuntimeUser([process.execPath, BIN, 'serve', '-c', env.configFile]);
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KEYGATE_CONFIG: '' } });
  child = c;
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keygate did not start within 15 s:\n${stderr}`)), 15_000);
    c.stderr!.on('data', (d: Buffer) => {
      stderr += d;
      const line = stderr.split('\n').find((l) => l.includes('keygate listening'));
      if (!line) return;
      clearTimeout(timer);
      const addr = (JSON.parse(line) as { admin: string }).admin;
      resolve(Number(addr.slice(addr.lastIndexOf(':') + 1)));
    });
    c.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`keygate exited with ${code} before listening:\n${stderr}`));
    });
  });
}

const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${admin.secret}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, allow: res.headers.get('allow'), json: (text ? JSON.parse(text) : null) as Record<string, any> };
};

beforeAll(async () => {
  env = await createTestEnv();
  credsDir = join(env.dir, 'creds');
  credFile = join(credsDir, 'credentials.yaml');
  mkdirSync(credsDir);
  env.writeConfig({ store: { file: 'creds/credentials.yaml', usageFlushInterval: '1h' }, audit: { output: 'stdout' } });
  admin = await env.token('ops', { roles: ['admin'] });
  victim = await env.token('svc', { roles: ['viewer'] });
  // Everything readable by the runtime user (test material only), the credential folder
  // writable by nobody but its owner — root, or this user with the write bit taken away.
  chmodSync(env.dir, 0o755);
  for (const f of readdirSync(env.dir)) if (statSync(join(env.dir, f)).isFile()) chmodSync(join(env.dir, f), 0o644);
  chmodSync(credFile, 0o644);
  chmodSync(credsDir, IS_ROOT ? 0o755 : 0o555);
  adminPort = await startProxy();
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  chmodSync(credsDir, 0o755);
  await env.cleanup();
});

describe('admin API on a read-only credential store', () => {
  it('reads as usual', async () => {
    const r = await call('GET', '/admin/v1/accounts');
    expect(r.status).toBe(200);
    expect((r.json.accounts as Array<{ name: string }>).map((a) => a.name).sort()).toEqual(['ops', 'svc']);
    expect((await call('GET', `/admin/v1/tokens/${victim.id}`)).status).toBe(200);
  });

  it('answers every change 405 KG_ERR_STORE_READ_ONLY, naming the file and the cause, and changes nothing', async () => {
    const before = readFileSync(credFile, 'utf8');
    const why = `the credential file ${credFile} is read-only here (EACCES: keygate's user may not write in ${credsDir}); change credentials where the file is managed, or make its folder writable for keygate`;
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/admin/v1/accounts', { name: 'newcomer', roles: ['viewer'] }, 'GET'],
      ['PATCH', '/admin/v1/accounts/svc', { owner: 'x@example.com' }, 'GET'],
      ['POST', `/admin/v1/tokens/${victim.id}/revoke`, { reason: 'leak' }, ''],
      ['DELETE', `/admin/v1/tokens/${victim.id}`, undefined, 'GET'],
    ];
    for (const [method, path, body, allow] of cases) {
      const r = await call(method, path, body);
      expect(r.status, `${method} ${path}`).toBe(405);
      expect(r.json, `${method} ${path}`).toMatchObject({ status: 405, code: 'KG_ERR_STORE_READ_ONLY', title: 'Credential store read-only', detail: why });
      expect(r.json.hint).toContain('update the Secret');
      expect(r.allow, `${method} ${path}`).toBe(allow);
    }
    expect(readFileSync(credFile, 'utf8')).toBe(before);
    // The token it tried to revoke still works as before, as far as the proxy is concerned.
    expect((await call('GET', `/admin/v1/tokens/${victim.id}`)).json.status).toBe('active');
  });

  it('the CLI says the same, with exit 5 (store unavailable)', async () => {
    const [cmd, args] = asRuntimeUser([process.execPath, BIN, 'account', 'create', '--name', 'from-cli', '-c', env.configFile]);
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d));
      const timer = setTimeout(() => c.kill('SIGKILL'), 15_000);
      c.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
    expect(r.code).toBe(5);
    expect(r.stderr).toBe(`keygate: config ${env.configFile}: the credential file ${credFile} is read-only here (EACCES: keygate's user may not write in ${credsDir}); change credentials where the file is managed, or make its folder writable for keygate\n`);
  });

  it('and the same change succeeds once the folder is writable (the refused twin)', async () => {
    if (IS_ROOT) {
      chownSync(credsDir, NOBODY, NOBODY);
      chownSync(credFile, NOBODY, NOBODY);
    } else chmodSync(credsDir, 0o755);
    const r = await call('POST', '/admin/v1/accounts', { name: 'newcomer', roles: ['viewer'] });
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    expect(readFileSync(credFile, 'utf8')).toContain('newcomer');
  });
});

// The demo's client-certificate way in, end to end: `keygate dev` on a copy of the shipped
// config (in a temporary folder, every port chosen by the system) creates the dev PKI, issues
// the demo client certificate and prints a curl command; that command, run as printed, gets
// through the clientauth host as the demo account. Run a second time, the demo reuses the
// certificate it issued instead of minting a new one.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/harness.js';
import { closedPort } from '../integration/support.js';

const hasCurl = existsSync('/usr/bin/curl') || existsSync('/usr/local/bin/curl');
const SHIPPED = fileURLToPath(new URL('../../config/keygate.yaml', import.meta.url));

let dir: string;
let upstreamPort: number;
let running: ChildProcess | undefined;

/** Starts `keygate dev` and returns its stdout once the banner is complete. */
async function startDev(): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'dev', '-c', 'config/keygate.yaml'], {
    cwd: dir,
    env: { ...process.env, KEYGATE_PORT: '0', KEYGATE_ADMIN_PORT: '0', KEYGATE_UPSTREAM_PORT: String(upstreamPort), KEYGATE_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running = child;
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keygate dev did not print its banner within 20 s:\n${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('Ctrl-C stops')) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`keygate dev exited with ${code}:\n${err}`));
    });
  });
}

async function stopDev(): Promise<void> {
  const child = running;
  running = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The printed command for the client-certificate way in, as an argument list. */
function certCommand(banner: string): string[] {
  const lines = banner.split('\n');
  const at = lines.findIndex((l) => l.includes('with the demo client certificate'));
  expect(at).toBeGreaterThan(-1);
  const command = lines[at + 1]!.trim();
  expect(command).toMatch(/^curl --cacert \S+ --cert \S+ --key \S+ --resolve clientauth\.localhost:\d+:127\.0\.0\.1 https:\/\/clientauth\.localhost:\d+\/\S+$/);
  return command.split(/\s+/).slice(1);
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', ...args], { cwd: dir, timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-demo-'));
  mkdirSync(join(dir, 'config'));
  copyFileSync(SHIPPED, join(dir, 'config', 'keygate.yaml'));
  upstreamPort = await closedPort();
});
afterAll(async () => {
  await stopDev();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasCurl)('keygate dev: the printed client-certificate command', () => {
  let fingerprint: string;

  it('works as printed, and the demo account arrives at the API', async () => {
    const banner = await startDev();
    const args = certCommand(banner);
    const r = await curl(args);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { identity: Record<string, string> };
    expect(body.identity['x-keygate-account']).toBe('demo');
    expect(body.identity['x-keygate-auth']).toBe('mtls');
    expect(body.identity['x-forwarded-client-cert']).toMatch(/^Hash=[0-9a-f]{64};Subject="CN=demo,O=keygate service account"$/);
    fingerprint = body.identity['x-keygate-credential']!;
    // The twin: the same command without the certificate and key.
    const without = args.filter((a, i) => !['--cert', '--key'].includes(a) && !['--cert', '--key'].includes(args[i - 1]!));
    const refused = await curl(['-o', '/dev/null', '-w', '%{http_code}', ...without]);
    expect(refused.stdout).toBe('401');
    await stopDev();
  });

  it('a second run reuses the certificate it issued', async () => {
    const banner = await startDev();
    const r = await curl(certCommand(banner));
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { identity: Record<string, string> }).identity['x-keygate-credential']).toBe(fingerprint);
    await stopDev();
  });
});
